"""Registry route modules, one per resource."""
