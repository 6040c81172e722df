"""Discovery: what is behind each URL of the catalog (probing, expansion, URL lists)."""
