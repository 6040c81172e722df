"""Watched sources: portals and data.json catalogs harvested on a schedule."""
