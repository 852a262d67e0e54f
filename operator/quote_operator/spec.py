"""A QuoteModel's spec as typed values, with the cross-field rules the CRD schema cannot express.

The API server has already applied the schema (types, enums, ranges, defaults); `parse` re-applies the
defaults anyway (objects stored before a default was added lack them) and raises `InvalidSpec` with a
message that says what to change. Kubernetes 1.20 has no CEL, so these rules live here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidSpec

__all__ = ["ALL", "Deployment", "QuoteModelSpec", "parse"]

ALL = "*"
Engine = Literal["sglang", "embedded"]
Runtime = Literal["ray", "kserve"]
Isolation = Literal["shared", "dedicated"]

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_URI_SCHEMES = ("hf://", "s3://", "gs://", "pvc://", "https://", "http://", "oci://")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One set of replicas: the whole model (shared) or one tenant's copy (dedicated).

    `tenant` is "*" for shared isolation; `name` names the RayService/InferenceService and Service.
    """

    name: str
    tenant: str


@dataclass(frozen=True, slots=True)
class QuoteModelSpec:
    """Validated spec of one QuoteModel named `name` in `namespace`."""

    name: str
    namespace: str
    model: str
    served_model_name: str
    engine: Engine
    runtime: Runtime
    gpus: int
    cpu: str
    memory: str
    min_replicas: int
    max_replicas: int
    target_ongoing_requests: int
    tenants: tuple[str, ...]
    mods: tuple[str, ...]
    isolation: Isolation

    @property
    def model_is_uri(self) -> bool:
        """True when `model` points at storage (KServe downloads it) rather than naming a hub model."""
        return self.model.startswith(_URI_SCHEMES)

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        """The replica sets this spec asks for, in a stable order."""
        if self.isolation == "shared":
            return (Deployment(self.name, ALL),)
        return tuple(Deployment(f"{self.name}-{tenant}", tenant) for tenant in self.tenants)


def parse(name: str, namespace: str, spec: Mapping[str, Any]) -> QuoteModelSpec:
    """Read and check a QuoteModel spec; raise `InvalidSpec` saying what to change."""
    resources = spec.get("resources") or {}
    scaling = spec.get("autoscaling") or {}
    access = spec.get("access") or {}
    model = str(spec.get("model") or "")
    parsed = QuoteModelSpec(
        name=name,
        namespace=namespace,
        model=model,
        served_model_name=str(spec.get("servedModelName") or model),
        engine=spec.get("engine", "embedded"),
        runtime=spec.get("runtime", "ray"),
        gpus=int(resources.get("gpus", 0)),
        cpu=str(resources.get("cpu", "2")),
        memory=str(resources.get("memory", "8Gi")),
        min_replicas=int(scaling.get("minReplicas", 1)),
        max_replicas=int(scaling.get("maxReplicas", 1)),
        target_ongoing_requests=int(scaling.get("targetOngoingRequests", 8)),
        tenants=tuple(sorted(set(access.get("tenants", [ALL])))),
        mods=tuple(sorted(set(access.get("mods", [ALL])))),
        isolation=access.get("isolation", "shared"),
    )
    _check(parsed)
    return parsed


def _check(spec: QuoteModelSpec) -> None:
    if not spec.model:
        raise InvalidSpec("spec.model is empty: give a Hugging Face id or a storage URI")
    if spec.min_replicas > spec.max_replicas:
        raise InvalidSpec(
            f"autoscaling.minReplicas ({spec.min_replicas}) is above maxReplicas ({spec.max_replicas}):"
            " raise maxReplicas or lower minReplicas"
        )
    if spec.engine == "sglang" and spec.gpus < 1:
        raise InvalidSpec("engine sglang needs resources.gpus >= 1; use engine embedded to serve on CPU")
    if spec.engine == "sglang" and spec.gpus > 1:
        raise InvalidSpec(
            f"engine sglang runs one SGLang rank on one GPU per replica: set resources.gpus to 1 (not {spec.gpus})"
            " and raise autoscaling.maxReplicas to use more GPUs"
        )
    if spec.engine == "sglang" and spec.runtime != "ray":
        raise InvalidSpec(
            "engine sglang is served by runtime ray (Ray Serve); the KServe runtime runs the embedded engine only"
        )
    if spec.isolation == "dedicated" and (not spec.tenants or ALL in spec.tenants):
        raise InvalidSpec('isolation dedicated needs access.tenants to name each tenant (not "*")')
    if spec.isolation == "shared" and not spec.tenants:
        raise InvalidSpec('access.tenants is empty: nobody could call this model; use ["*"] for every tenant')
    for deployment in spec.deployments:
        _check_name(deployment.name)


def _check_name(name: str) -> None:
    # Services need DNS-1035 labels; the same name is used for the RayService/InferenceService.
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise InvalidSpec(
            f"{name!r} cannot name a Service: use a QuoteModel name (plus '-tenant' when dedicated) of at most"
            " 63 lowercase letters, digits and '-', starting with a letter"
        )
