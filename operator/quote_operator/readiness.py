"""How ready a QuoteModel is, read from the status its runtime writes on the children.

KubeRay reports `status.serviceStatus: Running` (v1.0-1.2) or a `Ready` condition (v1.3+), and worker
counts under `activeServiceStatus.rayClusterStatus`. KServe reports a `Ready` condition and no replica
count. A model is ready when every one of its deployments is (dedicated isolation has one per tenant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .conditions import is_true
from .kube import INFERENCE_SERVICE, RAY_SERVICE, Kind

__all__ = ["Observation", "observe"]

RUNTIME_KINDS = (RAY_SERVICE, INFERENCE_SERVICE)


@dataclass(frozen=True, slots=True)
class Observation:
    ready: bool
    replicas: int | None
    waiting_for: tuple[str, ...]

    @property
    def message(self) -> str:
        if self.ready:
            return "every deployment reports ready"
        return "waiting for the runtime to report ready: " + ", ".join(self.waiting_for)


def observe(children: Iterable[tuple[Kind, str, Mapping[str, Any] | None]]) -> Observation:
    """Combine (kind, name, live object or None) of the runtime children into one observation."""
    waiting: list[str] = []
    counts: list[int | None] = []
    for kind, name, live in children:
        if kind not in RUNTIME_KINDS:
            continue
        status = (live or {}).get("status") or {}
        if not _ready(kind, status):
            waiting.append(f"{kind.kind} {name}")
        counts.append(_replicas(kind, status))
    known = [c for c in counts if c is not None]
    replicas = sum(known) if counts and len(known) == len(counts) else None
    return Observation(ready=bool(counts) and not waiting, replicas=replicas, waiting_for=tuple(waiting))


def _ready(kind: Kind, status: Mapping[str, Any]) -> bool:
    if is_true(status.get("conditions"), "Ready"):
        return True
    return kind == RAY_SERVICE and status.get("serviceStatus") == "Running"


def _replicas(kind: Kind, status: Mapping[str, Any]) -> int | None:
    if kind != RAY_SERVICE:
        return None
    cluster = (status.get("activeServiceStatus") or {}).get("rayClusterStatus") or {}
    for key in ("readyWorkerReplicas", "availableWorkerReplicas"):
        if isinstance(cluster.get(key), int):
            return int(cluster[key])
    return None
