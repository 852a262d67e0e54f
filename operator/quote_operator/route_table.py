"""Writes route entries (format: `routes.py`) into the route ConfigMap, one key per QuoteModel.

Every write is a merge patch of a single key, made conditional on the resourceVersion just read, so
concurrent handlers never overwrite each other's keys and the served-name uniqueness check cannot race:
a 409 means "read again", retried a few times here before giving up as a temporary error.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import Conflict, NameTaken
from .kube import CONFIG_MAP, Kube
from .routes import RouteEntry, route_key
from .settings import RouteSettings

__all__ = ["RouteTable"]

logger = logging.getLogger(__name__)
_ATTEMPTS = 5


class RouteTable:
    """The route ConfigMap, created on first use (so `helm upgrade` never owns, or wipes, its keys)."""

    def __init__(self, kube: Kube, settings: RouteSettings) -> None:
        self._kube = kube
        self._settings = settings

    def upsert(self, entry: RouteEntry) -> None:
        """Write `entry` under its QuoteModel's key; raise NameTaken if another QuoteModel serves its name."""
        key = route_key(entry.source.namespace, entry.source.name)
        for _ in range(_ATTEMPTS):
            current = self._read()
            _check_unique(current, key, entry)
            if current["data"].get(key) == entry.to_json():
                return
            if self._patch(current, {key: entry.to_json()}):
                return
        raise Conflict(f"route table {self._where}: still changing after {_ATTEMPTS} attempts")

    def remove(self, namespace: str, name: str) -> None:
        key = route_key(namespace, name)
        for _ in range(_ATTEMPTS):
            current = self._read()
            if key not in current["data"] or self._patch(current, {key: None}):
                return
        raise Conflict(f"route table {self._where}: still changing after {_ATTEMPTS} attempts")

    @property
    def _where(self) -> str:
        return f"{self._settings.namespace}/{self._settings.configmap}"

    def _read(self) -> dict[str, Any]:
        found = self._kube.get(CONFIG_MAP, self._settings.namespace, self._settings.configmap)
        if found is None:
            found = self._create()
        found.setdefault("data", {})
        found["data"] = found["data"] or {}
        return found

    def _create(self) -> dict[str, Any]:
        manifest = {
            "metadata": {
                "name": self._settings.configmap,
                "namespace": self._settings.namespace,
                "labels": {"app.kubernetes.io/managed-by": "quote-operator", "app.kubernetes.io/part-of": "quote"},
            },
            "data": {},
        }
        try:
            return self._kube.create(CONFIG_MAP, manifest)
        except Conflict:  # another handler created it first
            return self._kube.get(CONFIG_MAP, self._settings.namespace, self._settings.configmap) or manifest

    def _patch(self, current: dict[str, Any], data: dict[str, str | None]) -> bool:
        """False when the ConfigMap changed since `current` was read."""
        version = current["metadata"]["resourceVersion"]
        patch = {"metadata": {"resourceVersion": version}, "data": data}
        try:
            self._kube.merge_patch(CONFIG_MAP, self._settings.namespace, self._settings.configmap, patch)
        except Conflict:
            logger.debug("route table %s changed under us, reading again", self._where)
            return False
        return True


def _check_unique(current: dict[str, Any], key: str, entry: RouteEntry) -> None:
    for other_key, text in current["data"].items():
        if other_key == key:
            continue
        try:
            other = RouteEntry.from_json(text)
        except ValueError:
            continue
        if other.model == entry.model:
            raise NameTaken(
                f"served model name {entry.model!r} is already served by QuoteModel"
                f" {other.source.namespace}/{other.source.name}: set spec.servedModelName to another name"
            )
