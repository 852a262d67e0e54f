"""Where serving gets mods from: a local store (embedded) or the registry (production)."""
