"""Quote mod registry: tenants, API keys, signing keys, signed immutable mod versions, aliases, audit.

Layers: `models` (SQLAlchemy tables) ← `services` (keyword-only functions on a Session; all rules
live here) ← `api` (FastAPI routes, thin) and `client` (httpx, for the CLI and serving).
"""
