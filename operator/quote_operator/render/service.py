"""The per-deployment Service: a stable in-cluster name for the gateway, whatever the runtime.

It selects the deployment's serving pods by the labels the runtime templates put on them. For Ray it
also requires `ray.io/serve=true`, the label KubeRay sets on pods whose Serve proxy is healthy, so
traffic only reaches pods that can answer.
"""

from __future__ import annotations

from ..kube import SERVICE
from ..settings import OperatorSettings
from ..spec import Deployment, QuoteModelSpec
from .common import Child, Owner, metadata, pod_labels

__all__ = ["service"]


def service(spec: QuoteModelSpec, deployment: Deployment, owner: Owner, settings: OperatorSettings) -> Child:
    selector = pod_labels(spec, deployment)
    if spec.runtime == "ray":
        selector["ray.io/serve"] = "true"
        target = settings.ray.serve_port
    else:
        target = settings.kserve.port
    port = {"name": "http", "port": settings.routes.service_port, "targetPort": target, "protocol": "TCP"}
    manifest = {
        "metadata": metadata(spec, deployment, owner),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": [port]},
    }
    return Child(SERVICE, manifest)
