"""Naming a request's mod across the Ray hop, and getting it back on the engine replica.

    ingress: TrackedSource.resolve ─► ModVersion (its Mod remembered with version + digest)
             RemoteRuntime         ─► ModRef(name, version, digest) in the EngineRequest
    engine:  EngineMods.get(ModRef) ─► cached by digest, else source.resolve(name, version),
                                       checked against the digest the ingress saw

Both sides use the same kind of `ModSource` (the application's store, or the registry), so the
engine loads exactly the content the ingress resolved, verified the same way, once per digest.
"""

from __future__ import annotations

import weakref
from typing import Any

from quote_mod_sdk.mod import Mod
from quote_serving.mods.source import ModSource
from quote_serving.mods.store import ModVersion
from quote_serving.ray_serve.mod_cache import DigestMismatchError, ModCache
from quote_serving.ray_serve.wire import ModRef

__all__ = ["EngineMods", "TrackedSource"]


class TrackedSource:
    """A `ModSource` that remembers the version and digest of every `Mod` it hands out."""

    def __init__(self, source: ModSource) -> None:
        self.source = source
        self._refs: weakref.WeakKeyDictionary[Mod, ModRef] = weakref.WeakKeyDictionary()

    @property
    def dev_mode(self) -> bool:
        return self.source.dev_mode

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> ModVersion:
        return self._track(self.source.resolve(name, ref, tenant=tenant))

    def register(self, bundle: dict[str, Any], version: str | None = None) -> tuple[ModVersion, bool]:
        entry, created = self.source.register(bundle, version)
        return self._track(entry), created

    def latest(self) -> list[ModVersion]:
        return [self._track(entry) for entry in self.source.latest()]

    def ref_of(self, mod: Mod) -> ModRef | None:
        return self._refs.get(mod)

    def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            close()

    def _track(self, entry: ModVersion) -> ModVersion:
        self._refs[entry.mod] = ModRef(entry.name, entry.version, entry.digest)
        return entry


class EngineMods:
    """An engine replica's mods by digest. `get` may call the source: run it off the event loop."""

    def __init__(self, source: ModSource, cache: ModCache | None = None) -> None:
        self.source = source
        self._cache = cache or ModCache()

    def cached(self, ref: ModRef) -> Mod | None:
        return self._cache.get(ref.digest)

    def get(self, ref: ModRef) -> Mod:
        mod = self._cache.get(ref.digest)
        if mod is not None:
            return mod
        entry = self.source.resolve(ref.name, ref.version)
        if entry.digest != ref.digest:
            raise DigestMismatchError(
                f"mod {ref.name!r} version {ref.version!r} is {entry.digest} here but {ref.digest} on the ingress"
            )
        return self._cache.put(ref.digest, entry.mod)
