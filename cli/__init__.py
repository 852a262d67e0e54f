"""The `quote` command line."""
