"""The registry's REST API (FastAPI): thin routes over `quote_registry.services`."""
