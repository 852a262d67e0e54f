"""Errors of every mod source (local store, Ray bundle store, registry)."""

from __future__ import annotations

__all__ = ["ModConflictError", "UnknownModError"]


class UnknownModError(LookupError):
    """No such mod, version or alias."""


class ModConflictError(ValueError):
    """A version with different content already exists (versions are immutable)."""
