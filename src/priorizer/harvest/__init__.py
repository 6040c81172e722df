"""Harvesting CKAN portals: the client, the mapping of packages to datasets and assets, and the
resumable harvest itself."""
