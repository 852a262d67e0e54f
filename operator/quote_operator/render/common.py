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
    return settings.images.cuda if on_cuda_image(spec) else settings.images.serving


def on_cuda_image(spec: QuoteModelSpec) -> bool:
    """Whether the replicas run the CUDA image (whose JIT caches keep their root filesystem writable)."""
    return bool(spec.gpus) or spec.engine == "sglang"


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
    serving = settings.serving
    if serving.registry_url:
        env["QUOTE_REGISTRY_URL"] = serving.registry_url
    if serving.trace_store_url:
        env["QUOTE_TRACE_STORE_URL"] = serving.trace_store_url
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    if serving.trace_store_url:  # names the replica (its pod) in every shipped trace
        out.append({"name": "QUOTE_REPLICA_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    # Secrets live in the QuoteModel's namespace. The gateway's key is required: a replica that
    # cannot verify the gateway's tenant header must not start as an open door (it refuses to).
    secrets = [
        ("QUOTE_REGISTRY_API_KEY", serving.registry_api_key_secret, "api-key", True),
        ("QUOTE_GATEWAY_SECRET", serving.gateway_secret_secret, "secret", False),
        ("QUOTE_METRICS_TOKEN", serving.metrics_token_secret, "token", True),
        ("QUOTE_SHARE_SECRET", serving.share_secret_secret, "secret", True),
    ]
    for name, secret, key, optional in secrets:
        if secret:
            ref = {"name": secret, "key": key, "optional": optional}
            out.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return out


def endpoint_url(spec: QuoteModelSpec, deployment: Deployment, settings: OperatorSettings) -> str:
    """OpenAI base URL of a deployment's Service, as the gateway calls it."""
    host = f"{deployment.name}.{spec.namespace}.svc.{settings.routes.cluster_domain}"
    return f"http://{host}:{settings.routes.service_port}/v1"
