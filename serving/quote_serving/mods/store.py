"""The embedded server's mod store: bundles registered over `POST /v1/mods`, kept in memory.

Bundles are loaded once per digest (the same content registered twice shares one loaded
`Mod`); versions are immutable; `latest` follows the newest version. The registry service
replaces this store in production, behind the same `resolve` call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import bundle_digest, load_mod, validate_bundle
from quote_serving.mods.bundles import BundleStore, ResolvedMod
from quote_serving.mods.errors import ModConflictError, UnknownModError

__all__ = ["LocalModStore", "ModConflictError", "ModVersion", "UnknownModError"]


@dataclass(frozen=True)
class ModVersion:
    name: str
    version: str
    digest: str
    mod: Mod
    created: float
    bundle: dict[str, Any] = field(repr=False, compare=False)
    signed: bool = False


class LocalModStore:
    """`BundleStore`'s versions plus each bundle's loaded `Mod` (loaded once per digest)."""

    dev_mode = True  # bundles POSTed here are unsigned by design

    def __init__(self, loader: Callable[[dict[str, Any]], Mod] = load_mod) -> None:
        self._load = loader  # `ModWorkerPool.load` with isolated mods: no mod code runs here
        self._bundles = BundleStore()
        self._loaded: dict[str, Mod] = {}
        self._lock = threading.Lock()

    def register(self, bundle: dict[str, Any], version: str | None = None) -> tuple[ModVersion, bool]:
        """Store a bundle; returns (version, created). Identical content is a no-op."""
        spec = validate_bundle(bundle)
        digest = bundle_digest(spec)
        with self._lock:
            mod = self._loaded.get(digest)
        if mod is None:
            mod = self._load(spec)  # runs the mod's module code (outside the lock); a failure stores nothing
        entry, created = self._bundles.publish(spec, version)
        with self._lock:
            self._loaded.setdefault(digest, mod)
        return self._version(entry), created

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> ModVersion:
        # Bundles here have no owner: whoever runs the server registered them, for every caller.
        return self._version(self._bundles.resolve(name, ref))

    def names(self) -> list[str]:
        return [entry.name for entry in self._bundles.listing()]

    def latest(self) -> list[ModVersion]:
        return [self.resolve(name) for name in self.names()]

    def _version(self, entry: ResolvedMod) -> ModVersion:
        with self._lock:
            mod = self._loaded[entry.digest]
        bundle = entry.bundle if entry.bundle is not None else self._bundles.fetch(entry.digest)
        return ModVersion(entry.name, entry.version, entry.digest, mod, entry.created, bundle)
