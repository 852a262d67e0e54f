"""The registry's rules, as keyword-only functions on a SQLAlchemy Session (no HTTP here)."""
