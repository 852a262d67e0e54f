"""What every child shares: names, labels, owner references, the serving container's environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..kube import Kind
from ..settings import OperatorSettings
from ..spec import ALL, Deployment, QuoteModelSpec

__all__ = ["MANAGED_BY", "MODEL_LABEL", "TENANT_LABEL", "Child", "Owner", "endpoint_url", "model_labels"]

MANAGED_BY = "quote-operator"
MODEL_LABEL = "quote.dev/model"
TENANT_LABEL = "quote.dev/tenant"


@dataclass(frozen=True, slots=True)
class Owner:
    """The QuoteModel a child belongs to (for ownerReferences and the route's source)."""

    name: str
    namespace: str
    uid: str
    generation: int

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": "quote.dev/v1alpha1",
            "kind": "QuoteModel",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True, slots=True)
class Child:
    """One object to apply."""

    kind: Kind
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def model_labels(model_name: str) -> dict[str, str]:
    """Labels that find every child of one QuoteModel (used to prune and to delete)."""
    return {"app.kubernetes.io/managed-by": MANAGED_BY, MODEL_LABEL: model_name}


def labels(spec: QuoteModelSpec, deployment: Deployment) -> dict[str, str]:
    out = {**model_labels(spec.name), "app.kubernetes.io/name": "quote-model", "app.kubernetes.io/part-of": "quote"}
    if deployment.tenant != ALL:
        out[TENANT_LABEL] = deployment.tenant
    return out


def pod_labels(spec: QuoteModelSpec, deployment: Deployment) -> dict[str, str]:
    """Labels on serving pods: what the per-deployment Service selects."""
    out = {MODEL_LABEL: spec.name, "quote.dev/deployment": deployment.name}
    if deployment.tenant != ALL:
        out[TENANT_LABEL] = deployment.tenant
    return out


def metadata(spec: QuoteModelSpec, deployment: Deployment, owner: Owner, **extra: Any) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "namespace": spec.namespace,
        "labels": labels(spec, deployment),
        "ownerReferences": [owner.reference()],
        **extra,
    }


def image(spec: QuoteModelSpec, settings: OperatorSettings) -> str:
    """The CUDA build for GPU replicas (torch and SGLang need it), the smaller CPU build otherwise."""
    return settings.images.cuda if spec.gpus or spec.engine == "sglang" else settings.images.serving


def resources(spec: QuoteModelSpec) -> dict[str, Any]:
    """One replica's pod resources; GPUs only as limits (Kubernetes requires requests == limits for them)."""
    limits: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        limits["nvidia.com/gpu"] = spec.gpus
    return {"requests": {"cpu": spec.cpu, "memory": spec.memory}, "limits": limits}


def serving_env(spec: QuoteModelSpec, deployment: Deployment, settings: OperatorSettings) -> list[dict[str, Any]]:
    """What the serving process learns from its environment (quote_serving's ServeSettings reads QUOTE_*)."""
    env = {
        "QUOTE_MODEL": spec.model,
        "QUOTE_SERVED_MODEL_NAME": spec.served_model_name,
        "QUOTE_ENGINE": spec.engine,
        "QUOTE_TARGET_ONGOING_REQUESTS": str(spec.target_ongoing_requests),
        "QUOTE_ALLOWED_MODS": ",".join(spec.mods),
        "QUOTE_DEDICATED_TENANT": "" if deployment.tenant == ALL else deployment.tenant,
    }
    if settings.serving.registry_url:
        env["QUOTE_REGISTRY_URL"] = settings.serving.registry_url
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    if settings.serving.registry_api_key_secret:
        ref = {"name": settings.serving.registry_api_key_secret, "key": "api-key", "optional": True}
        out.append({"name": "QUOTE_REGISTRY_API_KEY", "valueFrom": {"secretKeyRef": ref}})
    return out


def endpoint_url(spec: QuoteModelSpec, deployment: Deployment, settings: OperatorSettings) -> str:
    """OpenAI base URL of a deployment's Service, as the gateway calls it."""
    host = f"{deployment.name}.{spec.namespace}.svc.{settings.routes.cluster_domain}"
    return f"http://{host}:{settings.routes.service_port}/v1"
