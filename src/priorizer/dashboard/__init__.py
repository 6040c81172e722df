"""The operators' dashboard at `/`: server-rendered HTML with SVG charts, refreshed in place by
a small script of ours. Everything it loads is served by Priorizer itself."""
