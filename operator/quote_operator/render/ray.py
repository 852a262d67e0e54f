"""KubeRay `RayService` (ray.io/v1) running the Quote Ray Serve application.

Shape: a head pod that hosts no replicas (`num-cpus: 0`), and one worker group whose pods are each
sized for exactly one Serve replica, between min and max replicas. Ray Serve's autoscaler picks the
replica count from requests in flight; Ray's in-tree autoscaler adds or removes worker pods to fit. The
operator never sets the worker group's `replicas`: the autoscaler owns that field, and server-side apply
would otherwise fight it on every reconcile.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..kube import RAY_SERVICE
from ..settings import OperatorSettings
from ..spec import Deployment, QuoteModelSpec
from .common import Child, Owner, image, metadata, on_cuda_image, pod_labels, resources, serving_env
from .security import container_security_context, pod_security_context, writable_mounts, writable_volumes

__all__ = ["cpu_cores", "ray_service", "serve_config"]

APP_NAME = "quote"


def ray_service(spec: QuoteModelSpec, deployment: Deployment, owner: Owner, settings: OperatorSettings) -> Child:
    manifest = {
        "metadata": metadata(spec, deployment, owner),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(spec, settings), sort_keys=False),
            "rayClusterConfig": _cluster(spec, deployment, settings),
        },
    }
    return Child(RAY_SERVICE, manifest)


def serve_config(spec: QuoteModelSpec, settings: OperatorSettings) -> dict[str, Any]:
    """Ray Serve config: one application built by `quote_serving.ray_serve.app:app_builder(args)`."""
    args: dict[str, Any] = {
        "model": spec.model,
        "served_model_name": spec.served_model_name,
        "engine": spec.engine,
        "min_replicas": spec.min_replicas,
        "max_replicas": spec.max_replicas,
        "target_ongoing_requests": spec.target_ongoing_requests,
        "num_cpus": cpu_cores(spec.cpu),
        "num_gpus": spec.gpus,
    }
    if settings.serving.registry_url:  # replicas fetch signed mods; otherwise each runs a development store
        args["registry_url"] = settings.serving.registry_url
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": settings.ray.serve_port},
        "applications": [
            {"name": APP_NAME, "route_prefix": "/", "import_path": settings.ray.import_path, "args": args}
        ],
    }


def cpu_cores(quantity: str) -> float:
    """Kubernetes CPU quantity ("2", "500m", "1.5") as cores, the unit Ray's num_cpus uses."""
    if quantity.endswith("m"):
        return float(quantity[:-1]) / 1000
    return float(quantity)


def _cluster(spec: QuoteModelSpec, deployment: Deployment, settings: OperatorSettings) -> dict[str, Any]:
    head_resources = {"cpu": settings.ray.head_cpu, "memory": settings.ray.head_memory}
    return {
        "rayVersion": settings.ray.ray_version,
        "enableInTreeAutoscaling": True,
        # KubeRay's autoscaler sidecar in the head pod: no privileges either (its root stays writable:
        # KubeRay owns what it mounts and writes).
        "autoscalerOptions": {"securityContext": container_security_context(read_only_root=False)},
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": _pod(
                spec, deployment, settings, "ray-head", {"requests": head_resources, "limits": head_resources}
            ),
        },
        "workerGroupSpecs": [
            {
                "groupName": "replicas",
                "minReplicas": spec.min_replicas,
                "maxReplicas": spec.max_replicas,
                "rayStartParams": {},
                "template": _pod(spec, deployment, settings, "ray-worker", resources(spec)),
            }
        ],
    }


def _pod(
    spec: QuoteModelSpec, deployment: Deployment, settings: OperatorSettings, container: str, res: dict[str, Any]
) -> dict[str, Any]:
    ports = [{"name": "serve", "containerPort": settings.ray.serve_port, "protocol": "TCP"}]
    return {
        "metadata": {"labels": pod_labels(spec, deployment)},
        "spec": {
            "securityContext": pod_security_context(),
            "containers": [
                {
                    "name": container,
                    "image": image(spec, settings),
                    "imagePullPolicy": settings.images.pull_policy,
                    "resources": res,
                    "env": serving_env(spec, deployment, settings),
                    "ports": ports,
                    "securityContext": container_security_context(read_only_root=not on_cuda_image(spec)),
                    "volumeMounts": writable_mounts(),
                }
            ],
            "volumes": writable_volumes(),
        },
    }
