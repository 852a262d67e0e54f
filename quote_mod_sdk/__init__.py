"""Quote mod SDK."""
