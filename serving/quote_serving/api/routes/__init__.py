"""Route modules, one per resource; `quote_serving.api.app` includes them."""
