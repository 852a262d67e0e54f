"""Operator settings: QUOTE_OPERATOR_* environment variables, in groups (`__` separates group and field).

    QUOTE_OPERATOR_ROUTES__NAMESPACE=quote-system   # the chart sets it to the release namespace
    QUOTE_OPERATOR_IMAGES__SERVING=ghcr.io/quote-dev/quote:0.1.0

Each group is what one part of the operator needs; `handlers.startup` reads them once into kopf's memo.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ImageSettings",
    "KServeSettings",
    "OperatorSettings",
    "RaySettings",
    "RetrySettings",
    "RouteSettings",
    "ServingSettings",
]

VERSION = "0.1.0"


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageSettings(_Group):
    """Images of the serving replicas (never pulled by the operator itself); docker/docker-bake.hcl builds both."""

    serving: str = Field(default=f"ghcr.io/quote-dev/quote:{VERSION}", description="CPU image (resources.gpus: 0)")
    cuda: str = Field(default=f"ghcr.io/quote-dev/quote:{VERSION}-cuda", description="GPU image (resources.gpus >= 1)")
    pull_policy: str = Field(default="IfNotPresent", description="imagePullPolicy of serving containers")


class ServingSettings(_Group):
    """Where serving replicas fetch mods. Without a registry each replica runs its own development store."""

    registry_url: str | None = Field(default=None, description="Mod registry URL (the chart's registry Service)")
    registry_api_key_secret: str | None = Field(
        default=None,
        description="Secret (key `api-key`) in each QuoteModel's namespace holding the replicas' registry key",
    )
    gateway_secret_secret: str | None = Field(
        default=None,
        description="Secret (key `secret`) in each QuoteModel's namespace holding the gateway's HMAC key: replicas"
        " then serve /v1 only to requests the gateway signed, for the tenant it names",
    )
    metrics_token_secret: str | None = Field(
        default=None, description="Secret (key `token`) in each QuoteModel's namespace: /metrics needs this bearer"
    )
    trace_store_url: str | None = Field(default=None, description="Replicas ship finished traces here (the registry)")
    share_secret_secret: str | None = Field(
        default=None, description="Secret (key `secret`) in each QuoteModel's namespace keying trace share links"
    )


class RaySettings(_Group):
    """KubeRay RayService shape: a small head that hosts no replicas, one worker pod per Serve replica."""

    ray_version: str = Field(default="2.60.0", description="rayVersion KubeRay expects in the image")
    head_cpu: str = Field(default="2", description="CPU of the head pod (GCS, dashboard, proxy; no replicas)")
    head_memory: str = Field(default="8Gi", description="Memory of the head pod")
    serve_port: int = Field(default=8000, description="Ray Serve's HTTP proxy port on every node")
    import_path: str = Field(default="quote_serving.ray_serve.app:app_builder", description="Serve application builder")


class KServeSettings(_Group):
    """KServe InferenceService shape: RawDeployment mode, so a plain Service can select the predictor pods."""

    runtime: str = Field(
        default="quote", description="(Cluster)ServingRuntime whose container runs quote_serving.kserve"
    )
    port: int = Field(default=8080, description="Port the runtime container listens on (KServe's convention)")
    cpu_target_percent: int = Field(
        default=80, ge=1, le=100, description="HPA CPU target: RawDeployment cannot scale on requests in flight"
    )


class RouteSettings(_Group):
    """Where the route table lives and how endpoints are spelled."""

    namespace: str = Field(default="quote-system", description="Namespace of the route ConfigMap (the operator's own)")
    configmap: str = Field(default="quote-routes", description="Name of the route ConfigMap the gateway mounts")
    cluster_domain: str = Field(default="cluster.local", description="DNS suffix of in-cluster Service names")
    service_port: int = Field(default=8000, description="Port of the per-model Service the gateway calls")


class RetrySettings(_Group):
    """Backoff for temporary failures and the readiness polling period, in seconds."""

    base_delay_s: float = Field(default=2.0, gt=0, description="First retry delay; doubles on each retry")
    max_delay_s: float = Field(default=300.0, gt=0, description="Ceiling of the retry delay")
    status_interval_s: float = Field(default=10.0, gt=0, description="How often children's readiness is read")


class OperatorSettings(BaseSettings):
    """Everything configurable about the operator; defaults suit the Helm chart."""

    model_config = SettingsConfigDict(env_prefix="QUOTE_OPERATOR_", env_nested_delimiter="__", frozen=True)

    field_manager: str = Field(default="quote-operator", description="Server-side apply field manager")
    liveness_endpoint: str = Field(default="http://0.0.0.0:8080/healthz", description="kopf's liveness probe URL")
    verbose: bool = Field(default=False, description="Debug logging (kopf's and ours)")
    images: ImageSettings = ImageSettings()
    serving: ServingSettings = ServingSettings()
    ray: RaySettings = RaySettings()
    kserve: KServeSettings = KServeSettings()
    routes: RouteSettings = RouteSettings()
    retry: RetrySettings = RetrySettings()

    def backoff(self, retry: int) -> float:
        """Delay before retry number `retry` (0-based): exponential, capped."""
        return float(min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** min(retry, 20)))
