"""The route table the gateway reads: which QuoteModel serves a model name, where, for whom, with which mods.

Format (version 1). The operator keeps one ConfigMap, `quote-routes` in its own namespace (settings
`routes.namespace`/`routes.configmap`). Each QuoteModel owns exactly one key, `<namespace>.<name>.json`;
its value is one JSON object:

    {
      "version": 1,
      "model": "Qwen/Qwen2.5-7B-Instruct",          # served model name: the part before "/mod" in requests
      "source": {"namespace": "ml", "name": "qwen-7b", "uid": "…", "generation": 3},
      "engine": "sglang", "runtime": "ray",
      "isolation": "shared",                        # or "dedicated"
      "tenants": ["acme", "globex"],                # or ["*"]: every tenant
      "mods": ["*"],                                # glob patterns on "name" or "name@version"; []: none
      "endpoints": {"*": "http://qwen-7b.ml.svc.cluster.local:8000/v1"},
      "ready": true
    }

`endpoints` maps a tenant to the OpenAI base URL of the replicas that serve it: "*" alone for shared
isolation, one key per tenant (and no "*") for dedicated isolation, so a dedicated model can never send a
tenant to another tenant's replicas. Gateway rule, in order: unknown `model` → 404; tenant not allowed
(`allows_tenant`) → 404 as well (do not reveal models); mod not allowed (`allows_mod`, checked with the
resolved version) → 403; `ready` false → 503; else call `endpoint_for(tenant)`.

The gateway mounts the ConfigMap as a volume (kubelet refreshes it within about a minute, no RBAC
needed) and calls `load_dir`; keys it cannot parse are skipped with a warning, never fatal. Served model
names are unique: the operator refuses (condition Degraded, reason NameTaken) a second QuoteModel that
claims a name an existing entry has. One entry is ~1 KiB, so a ConfigMap (1 MiB) holds ~1000 models.
Nothing here imports kopf or a Kubernetes client: the gateway imports this module alone.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "RouteEntry", "RouteSource", "load_dir", "route_key"]

FORMAT_VERSION = 1
ALL = "*"
logger = logging.getLogger(__name__)


def route_key(namespace: str, name: str) -> str:
    """ConfigMap key of a QuoteModel's entry (both parts are DNS names, so the key is a valid file name)."""
    return f"{namespace}.{name}.json"


@dataclass(frozen=True, slots=True)
class RouteSource:
    """The QuoteModel an entry comes from."""

    namespace: str
    name: str
    uid: str
    generation: int


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One served model name and how to reach it; see the module docstring for the JSON shape."""

    model: str
    source: RouteSource
    engine: str
    runtime: str
    isolation: str
    tenants: tuple[str, ...]
    mods: tuple[str, ...]
    endpoints: Mapping[str, str] = field(default_factory=dict)
    ready: bool = False
    version: int = FORMAT_VERSION

    def allows_tenant(self, tenant: str) -> bool:
        return ALL in self.tenants or tenant in self.tenants

    def allows_mod(self, name: str, version: str | None = None) -> bool:
        """True when a pattern matches the mod's name, or `name@version` for the version being run."""
        candidates = [name] if version is None else [name, f"{name}@{version}"]
        return any(fnmatch.fnmatchcase(c, p) for p in self.mods for c in candidates)

    def endpoint_for(self, tenant: str) -> str | None:
        """Base URL (ending in /v1) serving `tenant`, or None when the tenant may not use this model."""
        if not self.allows_tenant(tenant):
            return None
        return self.endpoints.get(tenant) or self.endpoints.get(ALL)

    def to_json(self) -> str:
        data = asdict(self)
        data["tenants"], data["mods"], data["endpoints"] = list(self.tenants), list(self.mods), dict(self.endpoints)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> RouteEntry:
        """Parse one entry; raise ValueError on anything that is not a version-1 entry."""
        data: Any = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a version {FORMAT_VERSION} route entry")
        try:
            return cls(
                model=str(data["model"]),
                source=RouteSource(**data["source"]),
                engine=str(data["engine"]),
                runtime=str(data["runtime"]),
                isolation=str(data["isolation"]),
                tenants=tuple(data["tenants"]),
                mods=tuple(data["mods"]),
                endpoints=dict(data["endpoints"]),
                ready=bool(data["ready"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed route entry: {exc}") from exc


def load_dir(path: str | Path) -> dict[str, RouteEntry]:
    """Entries of a mounted route ConfigMap, by served model name; unreadable keys are logged and skipped."""
    routes: dict[str, RouteEntry] = {}
    for file in sorted(Path(path).glob("*.json")):  # kubelet's ..data links and dot-dirs do not match
        try:
            entry = RouteEntry.from_json(file.read_bytes())
        except (OSError, ValueError) as exc:
            logger.warning("route %s skipped: %s", file.name, exc)
            continue
        routes[entry.model] = entry
    return routes
