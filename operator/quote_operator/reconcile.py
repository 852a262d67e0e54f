"""Converge one QuoteModel: apply its children, prune what it no longer needs, publish its route.

    body ─► spec.parse ─► render.children ─► apply each (server-side) ─► prune stale ─► route upsert
                                               └─► readiness.observe(applied objects) ─► status dict

Every step is idempotent, so kopf may call `Reconciler.apply` as often as it likes (create, update,
resume after a restart, retries). Deletion runs `cleanup`, which does what Kubernetes' garbage
collector would do with the owner references, plus the route entry the collector knows nothing about.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import conditions, render
from .conditions import Condition
from .errors import NameTaken, NotFound, QuoteOperatorError, RuntimeMissing
from .kube import INFERENCE_SERVICE, RAY_SERVICE, SERVICE, Kind, Kube
from .readiness import Observation, observe
from .render import Child, Owner
from .route_table import RouteTable
from .routes import RouteEntry, RouteSource
from .settings import OperatorSettings
from .spec import QuoteModelSpec, parse

__all__ = ["Reconciler", "error_status", "owner_of"]

logger = logging.getLogger(__name__)
CHILD_KINDS: tuple[Kind, ...] = (RAY_SERVICE, INFERENCE_SERVICE, SERVICE)
_RUNTIME_HINTS = {
    RAY_SERVICE: "install KubeRay (v1.0 or later), or set spec.runtime: kserve",
    INFERENCE_SERVICE: "install KServe, or set spec.runtime: ray",
}


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(meta["name"], meta["namespace"], meta["uid"], int(meta.get("generation", 1)))


class Reconciler:
    """Applies and deletes a QuoteModel's children through one `Kube` client."""

    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self._kube = kube
        self._settings = settings
        self.routes = RouteTable(kube, settings.routes)

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Converge the children of `body`; return the status to write. Raises QuoteOperatorError."""
        return self._converge(body)[0]

    def refresh(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool] | None:
        """Status and readiness from the children's live status (re-applying any child someone deleted).

        None while the handlers have not converged this generation: readiness would describe old children.
        """
        owner = owner_of(body)
        status = body.get("status") or {}
        if status.get("observedGeneration") != owner.generation or conditions.is_true(
            status.get("conditions"), "Degraded"
        ):
            return None
        spec = parse(owner.name, owner.namespace, body.get("spec") or {})
        desired = render.children(spec, owner, self._settings)
        live = [(c.kind, c.name, self._kube.get(c.kind, owner.namespace, c.name)) for c in desired]
        if any(obj is None for _, _, obj in live):
            logger.info("QuoteModel %s/%s lost a child; applying again", owner.namespace, owner.name)
            new_status, observation = self._converge(body)
            return new_status, observation.ready
        observation = observe(live)
        return self.status(body, spec, observation), observation.ready

    def publish_readiness(self, body: Mapping[str, Any], ready: bool) -> None:
        owner = owner_of(body)
        spec = parse(owner.name, owner.namespace, body.get("spec") or {})
        self.routes.upsert(self.route_entry(spec, owner, ready=ready))

    def cleanup(self, namespace: str, name: str, uid: str) -> None:
        """Delete the route entry and every child owned by the QuoteModel with `uid`."""
        self.routes.remove(namespace, name)
        for kind, child in self._owned(namespace, name, uid):
            logger.info("deleting %s %s/%s", kind.kind, namespace, child)
            self._kube.delete(kind, namespace, child)

    def _converge(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], Observation]:
        owner = owner_of(body)
        spec = parse(owner.name, owner.namespace, body.get("spec") or {})
        desired = render.children(spec, owner, self._settings)
        applied = [(child.kind, child.name, self._apply_child(child, owner)) for child in desired]
        self._prune(owner, keep={(c.kind, c.name) for c in desired})
        observation = observe(applied)
        self.routes.upsert(self.route_entry(spec, owner, ready=observation.ready))
        return self.status(body, spec, observation), observation

    def status(self, body: Mapping[str, Any], spec: QuoteModelSpec, seen: Observation) -> dict[str, Any]:
        endpoints = self._endpoints(spec)
        updates = [
            Condition(
                "Ready", "True" if seen.ready else "False", "Serving" if seen.ready else "Starting", seen.message
            ),
            Condition(
                "Progressing", "False" if seen.ready else "True", "Serving" if seen.ready else "Applied", seen.message
            ),
            Condition("Degraded", "False", "AsExpected"),
        ]
        generation = int(body["metadata"].get("generation", 1))
        return {
            "observedGeneration": generation,
            "endpoint": endpoints.get("*", ""),
            "endpoints": endpoints,
            "replicas": seen.replicas,
            "conditions": conditions.merge(
                (body.get("status") or {}).get("conditions"), updates, generation=generation
            ),
        }

    def route_entry(self, spec: QuoteModelSpec, owner: Owner, *, ready: bool) -> RouteEntry:
        return RouteEntry(
            model=spec.served_model_name,
            source=RouteSource(owner.namespace, owner.name, owner.uid, owner.generation),
            engine=spec.engine,
            runtime=spec.runtime,
            isolation=spec.isolation,
            tenants=spec.tenants,
            mods=spec.mods,
            endpoints=self._endpoints(spec),
            ready=ready,
        )

    def _endpoints(self, spec: QuoteModelSpec) -> dict[str, str]:
        return {d.tenant: render.endpoint_url(spec, d, self._settings) for d in spec.deployments}

    def _apply_child(self, child: Child, owner: Owner) -> dict[str, Any]:
        existing = self._kube.get(child.kind, owner.namespace, child.name)
        if existing is not None and not _owned_by(existing, owner.uid):
            raise NameTaken(
                f"{child.kind.kind} {owner.namespace}/{child.name} exists and does not belong to this QuoteModel:"
                " delete it or rename the QuoteModel"
            )
        try:
            return self._kube.apply(child.kind, child.manifest)
        except NotFound as exc:
            if child.kind not in _RUNTIME_HINTS:
                raise
            kind = child.kind
            raise RuntimeMissing(
                f"this cluster does not serve {kind.kind} ({kind.api_version}): {_RUNTIME_HINTS[kind]}"
            ) from exc

    def _prune(self, owner: Owner, *, keep: set[tuple[Kind, str]]) -> None:
        for kind, name in self._owned(owner.namespace, owner.name, owner.uid):
            if (kind, name) not in keep:
                logger.info("pruning %s %s/%s, no longer in the spec", kind.kind, owner.namespace, name)
                self._kube.delete(kind, owner.namespace, name)

    def _owned(self, namespace: str, name: str, uid: str) -> list[tuple[Kind, str]]:
        found: list[tuple[Kind, str]] = []
        for kind in CHILD_KINDS:
            try:
                items = self._kube.list_by_labels(kind, namespace, labels=render.model_labels(name))
            except NotFound:  # the runtime's CRD is not installed: nothing of that kind to own
                continue
            found.extend((kind, item["metadata"]["name"]) for item in items if _owned_by(item, uid))
        return found


def error_status(body: Mapping[str, Any], error: QuoteOperatorError, *, retrying: bool) -> dict[str, Any]:
    """Status for a failed reconcile: Degraded with the reason; Ready left as it was (old children still serve)."""
    current = (body.get("status") or {}).get("conditions")
    generation = int(body["metadata"].get("generation", 1))
    updates = [
        Condition("Degraded", "True", error.reason, str(error)),
        Condition("Progressing", "True" if retrying else "False", "Retrying" if retrying else error.reason, str(error)),
    ]
    if not any(c.get("type") == "Ready" for c in current or ()):
        updates.append(Condition("Ready", "False", error.reason, str(error)))
    return {"observedGeneration": generation, "conditions": conditions.merge(current, updates, generation=generation)}


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or ())
