"""Development mod bundles by name and version — data only, no mod code runs here.

The one place the development store's rules live: identical content is a no-op, versions are
immutable (other content for an existing version is refused), unnamed versions count up from 1,
`latest` is the newest. `LocalModStore` (store.py) adds loaded mods on top for `quote serve`; the
Ray application shares one instance across its replicas (`quote_serving.ray_serve.mod_store`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from quote_mod_sdk.serialize import bundle_digest, validate_bundle
from quote_serving.mods.errors import ModConflictError, UnknownModError

__all__ = ["BundleStore", "ResolvedMod"]


@dataclass(frozen=True)
class ResolvedMod:
    """One immutable mod version; `pinned` says the ref named it exactly (so it can never move)."""

    name: str
    version: str
    digest: str
    created: float
    bundle: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # None in listings
    pinned: bool = False


class BundleStore:
    """In-memory, thread-safe; raises the mod store's own `UnknownModError` / `ModConflictError`."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, ResolvedMod]] = {}
        self._bundles: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def publish(self, bundle: dict[str, Any], version: str | None) -> tuple[ResolvedMod, bool]:
        """Store a bundle; returns (version, created)."""
        spec = validate_bundle(bundle)
        digest, name = bundle_digest(spec), spec["name"]
        with self._lock:
            versions = self._versions.setdefault(name, {})
            same = next((v for v in versions.values() if v.digest == digest and version in (None, v.version)), None)
            if same is not None:
                return same, False
            version = version or str(len(versions) + 1)
            if version in versions:
                raise ModConflictError(f"mod {name!r} version {version!r} already exists with different content")
            entry = ResolvedMod(name, version, digest, time.time())
            versions[version] = entry
            self._bundles[digest] = spec
        return entry, True

    def resolve(self, name: str, ref: str | None) -> ResolvedMod:
        """`ref` None or "latest": the newest version; else that exact version (pinned)."""
        with self._lock:
            versions = self._versions.get(name)
            if not versions:
                raise UnknownModError(f"The mod '{name}' does not exist or you do not have access to it.")
            if ref in (None, "latest"):
                entry = max(versions.values(), key=lambda v: v.created)
            elif ref in versions:
                entry = replace(versions[ref], pinned=True)
            else:
                raise UnknownModError(f"The mod '{name}' has no version or alias '{ref}'.")
            return replace(entry, bundle=self._bundles[entry.digest])

    def fetch(self, digest: str) -> dict[str, Any]:
        with self._lock:
            if digest not in self._bundles:
                raise UnknownModError(f"No mod bundle has the digest {digest}.")
            return self._bundles[digest]

    def listing(self) -> list[ResolvedMod]:
        """The newest version of every mod, by name (bundles omitted)."""
        with self._lock:
            groups = [self._versions[name] for name in sorted(self._versions)]
        return [max(versions.values(), key=lambda v: v.created) for versions in groups]
