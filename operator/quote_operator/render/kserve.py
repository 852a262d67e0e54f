"""KServe `InferenceService` (serving.kserve.io/v1beta1) using the `quote` ServingRuntime.

RawDeployment mode: plain Deployment + HPA, no Knative or Istio, so the per-model Service can select
the predictor pods by label like it does Ray's. The cost: KServe's HPA scales on CPU, not requests in
flight, so `targetOngoingRequests` only reaches the runtime (as QUOTE_TARGET_ONGOING_REQUESTS).
Storage URIs go to `storageUri` (KServe downloads them to /mnt/models); hub ids reach the runtime as
QUOTE_MODEL. The runtime's container runs `python -m quote_serving.kserve` (see the chart).
"""

from __future__ import annotations

from ..kube import INFERENCE_SERVICE
from ..settings import OperatorSettings
from ..spec import Deployment, QuoteModelSpec
from .common import Child, Owner, metadata, on_cuda_image, pod_labels, resources, serving_env
from .security import container_security_context, pod_security_context, writable_mounts, writable_volumes

__all__ = ["inference_service"]


def inference_service(spec: QuoteModelSpec, deployment: Deployment, owner: Owner, settings: OperatorSettings) -> Child:
    annotations = {
        "serving.kserve.io/deploymentMode": "RawDeployment",
        "serving.kserve.io/autoscalerClass": "hpa",
    }
    model: dict[str, object] = {
        "modelFormat": {"name": "quote"},
        "runtime": settings.kserve.runtime,
        "resources": resources(spec),
        "env": serving_env(spec, deployment, settings),
        # Merged into the ServingRuntime's container (the chart's sets the same): hardened here too, so a
        # runtime that sets none still runs confined.
        "securityContext": container_security_context(read_only_root=not on_cuda_image(spec)),
        "volumeMounts": writable_mounts(),
    }
    if spec.model_is_uri:
        model["storageUri"] = spec.model
    manifest = {
        "metadata": metadata(spec, deployment, owner, annotations=annotations),
        "spec": {
            "predictor": {
                "minReplicas": spec.min_replicas,
                "maxReplicas": spec.max_replicas,
                "scaleMetric": "cpu",
                "scaleTarget": settings.kserve.cpu_target_percent,
                "labels": pod_labels(spec, deployment),
                "securityContext": pod_security_context(),  # a ServingRuntime cannot set the pod's
                "volumes": writable_volumes(),
                "model": model,
            }
        },
    }
    return Child(INFERENCE_SERVICE, manifest)
