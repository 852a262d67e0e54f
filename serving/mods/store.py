"""The embedded server's mod store: bundles registered over `POST /v1/mods`, kept in memory.

Bundles are loaded once per digest (the same content registered twice shares one loaded
`Mod`); versions are immutable; `latest` follows the newest version. The registry service
replaces this store in production, behind the same `resolve` call.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import bundle_digest, load_mod, validate_bundle

__all__ = ["LocalModStore", "ModConflictError", "ModVersion", "UnknownModError"]


class UnknownModError(LookupError):
    """No such mod, version or alias."""


class ModConflictError(ValueError):
    """A version with different content already exists (versions are immutable)."""


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
    dev_mode = True  # bundles POSTed here are unsigned by design

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, ModVersion]] = {}
        self._loaded: dict[str, Mod] = {}
        self._lock = threading.Lock()

    def register(self, bundle: dict[str, Any], version: str | None = None) -> tuple[ModVersion, bool]:
        """Store a bundle; returns (version, created). Identical content is a no-op."""
        spec = validate_bundle(bundle)
        digest = bundle_digest(spec)
        name = spec["name"]
        with self._lock:
            versions = self._versions.get(name, {})
            same = next((v for v in versions.values() if v.digest == digest and version in (None, v.version)), None)
            if same is not None:
                return same, False
            version = version or str(len(versions) + 1)
            if version in versions:
                raise ModConflictError(f"mod {name!r} version {version!r} already exists with different content")
        mod = self._loaded.get(digest) or load_mod(spec)  # runs the mod's module code: outside the lock
        with self._lock:
            self._loaded[digest] = mod
            entry = ModVersion(name, version, digest, mod, time.time(), spec)
            self._versions.setdefault(name, {})[version] = entry
        return entry, True

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> ModVersion:
        # Bundles here have no owner: whoever runs the server registered them, for every caller.
        with self._lock:
            versions = self._versions.get(name)
            if not versions:
                raise UnknownModError(f"The mod '{name}' does not exist or you do not have access to it.")
            if ref in (None, "latest"):
                return max(versions.values(), key=lambda v: v.created)
            if ref not in versions:
                raise UnknownModError(f"The mod '{name}' has no version or alias '{ref}'.")
            return versions[ref]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._versions)

    def latest(self) -> list[ModVersion]:
        return [self.resolve(name) for name in self.names()]
