"""Helpers for the Kubernetes tests: CRDs, namespaces, polling, and the command-line tools."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "quote"
QUOTEMODEL_CRD = CHART / "crds" / "quotemodels.quote.dev.yaml"
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, what: str, timeout_s: float = 30.0, every_s: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail saying `what` never happened."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"after {timeout_s}s, still not: {what} (last: {last!r})")


def third_party_crd(group: str, version: str, kind: str, plural: str, *, scope: str = "Namespaced") -> dict[str, Any]:
    """A CRD that accepts anything under spec/status: stands in for KubeRay, KServe, Prometheus operator."""
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": loose, "status": loose}}},
                }
            ],
        },
    }


# InferenceService is installed by the tests that need it: another shows what happens without it.
INFERENCE_SERVICE_CRD = third_party_crd("serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices")
THIRD_PARTY_CRDS = [
    third_party_crd("ray.io", "v1", "RayService", "rayservices"),
    third_party_crd(
        "serving.kserve.io", "v1alpha1", "ClusterServingRuntime", "clusterservingruntimes", scope="Cluster"
    ),
    third_party_crd("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    third_party_crd("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
]


def install_crds(api: kubernetes.client.ApiClient, crds: list[dict[str, Any]]) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    for crd in crds:
        try:
            extensions.create_custom_resource_definition(crd)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
    for crd in crds:
        name = crd["metadata"]["name"]
        eventually(lambda name=name: _established(extensions, name), what=f"CRD {name} established")
    discovery = kubernetes.client.ApisApi(api)
    groups = {crd["spec"]["group"] for crd in crds}
    eventually(
        lambda: groups <= {g.name for g in discovery.get_api_versions().groups}, what=f"API groups {groups} discovered"
    )


def uninstall_crd(api: kubernetes.client.ApiClient, crd: dict[str, Any]) -> None:
    """Delete a CRD (the API server deletes its objects itself) and wait until it is gone."""
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    name = crd["metadata"]["name"]
    try:
        extensions.delete_custom_resource_definition(name, _preload_content=False)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
    eventually(
        lambda: name not in {c.metadata.name for c in extensions.list_custom_resource_definition().items},
        what=f"CRD {name} gone",
    )


def _established(extensions: kubernetes.client.ApiextensionsV1Api, name: str) -> bool:
    crd = extensions.read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


def load_yaml(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def new_namespace(api: kubernetes.client.ApiClient, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def ensure_namespace(api: kubernetes.client.ApiClient, name: str) -> str:
    core = kubernetes.client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": name}})
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
    return name


def tool(name: str, assets: Path | None = None) -> str | None:
    """A command-line tool: $NAME (e.g. $HELM), then the envtest assets folder, then PATH."""
    explicit = os.environ.get(name.upper())
    if explicit:
        return explicit
    if assets is not None and (assets / name).exists():
        return str(assets / name)
    return shutil.which(name)
