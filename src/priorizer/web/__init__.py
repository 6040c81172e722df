"""The web layer: the app factory, what routes receive, middleware, auth, error mapping.
Domain routers (`*/api.py`) stay in their domains and use these."""
