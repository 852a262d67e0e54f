"""Rendering the chart with helm and handing manifests to the API server (for real, or as a dry run)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.dynamic import DynamicClient

from .kit import CHART

EVERYTHING_ON = [
    "metrics.serviceMonitor.enabled=true",
    "metrics.podMonitor.enabled=true",
    "otelCollector.enabled=true",
    "kserve.servingRuntime.enabled=true",
    "operator.verbose=true",
]


def helm_template(
    helm: str,
    *,
    namespace: str,
    sets: Sequence[str] = (),
    kube_version: str = "",
    chart: Path = CHART,
    extra: Sequence[str] = (),
) -> str:
    args = [helm, "template", "quote", str(chart), "--namespace", namespace]
    args += [f"--set={s}" for s in sets] + ([f"--kube-version={kube_version}"] if kube_version else []) + list(extra)
    return run(args)


def run(args: Sequence[str], *, stdin: str | None = None) -> str:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:3])}… exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def documents(manifests: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifests) if d]


def server_version(api: kubernetes.client.ApiClient) -> str:
    return str(kubernetes.client.VersionApi(api).get_code().git_version)


def apply(
    manifests: str, *, kubectl: str | None, api: kubernetes.client.ApiClient, kubeconfig: Path, dry_run: bool
) -> list[str]:
    """`kubectl apply [--dry-run=server] -f -`, or server-side apply through the Python client; returns kinds/names."""
    if kubectl:
        args = [kubectl, f"--kubeconfig={kubeconfig}", "apply", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
        return run(args, stdin=manifests).splitlines()
    dynamic = DynamicClient(api)
    applied = []
    for doc in documents(manifests):
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        options: dict[str, Any] = {"field_manager": "quote-tests", "force_conflicts": True}
        if dry_run:
            options["dry_run"] = "All"
        dynamic.server_side_apply(resource, body=doc, namespace=namespace, **options)
        applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return applied
