"""Status conditions (Ready, Progressing, Degraded) as Kubernetes conventions want them.

A condition keeps its `lastTransitionTime` while its status does not change, so `kubectl wait` and
dashboards see real transitions rather than a timestamp that moves on every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = ["Condition", "is_true", "merge", "now"]

Status = Literal["True", "False", "Unknown"]
_ORDER = ("Ready", "Progressing", "Degraded")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str = ""

    def as_dict(self, generation: int, timestamp: str) -> dict[str, Any]:
        condition: dict[str, Any] = {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "observedGeneration": generation,
            "lastTransitionTime": timestamp,
        }
        if self.message:  # the 1.20 API server turns "" into null in status merge patches, then refuses it
            condition["message"] = self.message[:1000]
        return condition


def merge(
    current: Iterable[Mapping[str, Any]] | None, updates: Iterable[Condition], *, generation: int
) -> list[dict[str, Any]]:
    """The condition list after `updates`, keeping transition times of conditions whose status stayed."""
    by_type = {str(c.get("type")): dict(c) for c in current or ()}
    stamp = now()
    for update in updates:
        old = by_type.get(update.type)
        unchanged = old is not None and old.get("status") == update.status
        when = str(old.get("lastTransitionTime", stamp)) if old is not None and unchanged else stamp
        by_type[update.type] = update.as_dict(generation, when)
    return [by_type[t] for t in _ORDER if t in by_type]


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions or ())
