"""Loaded mods of one replica, keyed by bundle digest (a version's content, not its name).

A bundle is verified against the digest it was asked for before its code runs, then loaded once;
every later request for that digest reuses the same `Mod`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from quote_mod_sdk.errors import QuoteModError
from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import bundle_digest, load_mod, validate_bundle

__all__ = ["DigestMismatchError", "ModCache"]

logger = logging.getLogger(__name__)


class DigestMismatchError(QuoteModError):
    """A bundle (or a version) does not have the digest it was asked for."""


class ModCache:
    """Thread-safe LRU of digest → loaded `Mod` (loading runs the bundle's module code)."""

    def __init__(self, capacity: int = 256, loader: Callable[[dict[str, Any]], Mod] = load_mod) -> None:
        self.capacity = capacity
        self._load = loader  # `ModIsolation.loader`: with isolated mods no bundle code runs here
        self._mods: OrderedDict[str, Mod] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Mod | None:
        with self._lock:
            mod = self._mods.get(digest)
            if mod is not None:
                self._mods.move_to_end(digest)
            return mod

    def load(self, bundle: dict[str, Any], digest: str) -> Mod:
        """Verify `bundle` against `digest`, load it (outside the lock: it runs user code), cache it."""
        cached = self.get(digest)
        if cached is not None:
            return cached
        spec = validate_bundle(bundle)
        actual = bundle_digest(spec)
        if actual != digest:
            raise DigestMismatchError(f"mod bundle hashes to {actual}, not the requested {digest}; refusing to load it")
        mod = self._load(spec)
        logger.info("loaded mod %s (%s)", mod.name, digest)
        return self.put(digest, mod)

    def put(self, digest: str, mod: Mod) -> Mod:
        """Cache `mod` under `digest`; if another thread got there first, its `Mod` wins."""
        with self._lock:
            mod = self._mods.setdefault(digest, mod)
            self._mods.move_to_end(digest)
            while len(self._mods) > self.capacity:
                self._mods.popitem(last=False)
            return mod
