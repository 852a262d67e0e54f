"""Where serving gets mods: one protocol, two implementations.

    LocalModStore       (store.py)            embedded dev mode: bundles POSTed to this server, unsigned
    RegistryModSource   (registry_source.py)  production: the registry, signatures verified before loading

Routes only call `resolve`, `register` and `latest`, so the gateway and Ray replicas can swap
sources without touching the API layer.
"""

from __future__ import annotations

from typing import Any, Protocol

from quote_serving.mods.store import ModVersion


class ModSource(Protocol):
    @property
    def dev_mode(self) -> bool:
        """Unsigned mods load (said in logs and /v1/models)."""
        ...

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> ModVersion:
        """The loaded mod for `name` at `ref` (version, alias or range; None = latest).

        `tenant` (set behind a gateway): resolve as that tenant sees mods, its own and public ones.
        """
        ...

    def register(self, bundle: dict[str, Any], version: str | None = None) -> tuple[ModVersion, bool]:
        """The seeds' `POST /v1/mods`: store (or publish) a bundle; (version, created)."""
        ...

    def latest(self) -> list[ModVersion]:
        """The newest version of every mod this server may serve (for /v1/models)."""
        ...
