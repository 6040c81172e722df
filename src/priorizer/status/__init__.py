"""Where the rescue stands: /health, /status, /metrics, the maintenance runs; the figures the
dashboard and `priorizer status` show. Reads every domain; no domain reads it."""
