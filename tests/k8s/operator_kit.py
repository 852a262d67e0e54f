"""Driving the operator in-process (kopf's KopfRunner) and reading what it produced, as an admin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kopf.testing import KopfRunner

from tests.ports import free_port

from .apiserver import ApiServer, User
from .kit import eventually

GROUP, VERSION, PLURAL = "quote.dev", "v1alpha1", "quotemodels"
ROUTES_NAMESPACE, ROUTES_CONFIGMAP = "quote-system", "quote-routes"


IN_CLUSTER = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


def operator_env(apiserver: ApiServer, user: User) -> dict[str, str]:
    """What the chart would set, pointed at the test API server, with fast polling and retries."""
    return {
        "KUBECONFIG": str(apiserver.kubeconfig(user)),
        "QUOTE_OPERATOR_ROUTES__NAMESPACE": ROUTES_NAMESPACE,
        "QUOTE_OPERATOR_RETRY__STATUS_INTERVAL_S": "0.3",
        "QUOTE_OPERATOR_RETRY__BASE_DELAY_S": "0.5",
        "QUOTE_OPERATOR_RETRY__MAX_DELAY_S": "2",
    }


@contextmanager
def operator_process(apiserver: ApiServer, user: User, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The container's command, `python -m quote_operator`, as a process; ready once its liveness probe answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in IN_CLUSTER}
    env |= operator_env(apiserver, user) | {"QUOTE_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{port}/healthz"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "quote_operator"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            eventually(
                lambda: process.poll() is not None or _answers(port), what="operator liveness probe", timeout_s=60
            )
            assert process.poll() is None, log.read_text()
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def running_operator(apiserver: ApiServer, user: User, *, namespaces: Sequence[str] = ()) -> Iterator[KopfRunner]:
    """The real operator (quote_operator.handlers) in a thread, as `user`, polling readiness fast."""
    scope = [f"--namespace={ns}" for ns in namespaces] or ["--all-namespaces"]
    env = operator_env(apiserver, user)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for key in IN_CLUSTER:  # if the tests run in a pod, never reach for that pod's cluster
            patch.delenv(key, raising=False)
        args = ["run", "--standalone", "--verbose", *scope, "-m", "quote_operator.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


class Cluster:
    """Typed reads and writes the tests make, with the official client (not the operator's)."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)

    def create_model(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "QuoteModel", "metadata": {"name": name}, "spec": spec}
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))

    def patch_model(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}, _content_type="application/merge-patch+json"
        )

    def delete_model(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def delete_all_models(self) -> None:
        found = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        for item in found:
            self.delete_model(item["metadata"]["namespace"], item["metadata"]["name"])
        for item in found:
            self.wait_gone(item["metadata"]["namespace"], item["metadata"]["name"])

    def model(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)

    def rayservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.custom.get_namespaced_custom_object, "ray.io", "v1", namespace, "rayservices", name)

    def inferenceservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        args = ("serving.kserve.io", "v1beta1", namespace, "inferenceservices", name)
        return self._get(self.custom.get_namespaced_custom_object, *args)

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._get(self.core.read_namespaced_service, name, namespace)
        return None if found is None else found.to_dict()

    def set_rayservice_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Play KubeRay: write the status it would report."""
        self.custom.patch_namespaced_custom_object_status(
            "ray.io",
            "v1",
            namespace,
            "rayservices",
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def routes(self) -> dict[str, dict[str, Any]]:
        found = self._get(self.core.read_namespaced_config_map, ROUTES_CONFIGMAP, ROUTES_NAMESPACE)
        return {k: json.loads(v) for k, v in ((found.data if found else None) or {}).items()}

    def delete_route_table(self) -> None:
        self._get(self.core.delete_namespaced_config_map, ROUTES_CONFIGMAP, ROUTES_NAMESPACE)

    def route(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.routes().get(f"{namespace}.{name}.json")

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        found = self.model(namespace, name) or {}
        return next((c for c in (found.get("status") or {}).get("conditions") or () if c["type"] == type_), None)

    def wait_condition(self, namespace: str, name: str, type_: str, status: str, **kw: Any) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            found = self.condition(namespace, name, type_)
            return found if found and found["status"] == status else None

        return eventually(probe, what=f"{namespace}/{name} {type_}={status}", **kw)

    def wait_gone(self, namespace: str, name: str) -> None:
        eventually(lambda: self.model(namespace, name) is None, what=f"QuoteModel {namespace}/{name} deleted")

    @staticmethod
    def _get(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise


def kubectl_apply(
    kubectl: str | None, api: kubernetes.client.ApiClient, kubeconfig: Path, path: Path, namespace: str
) -> None:
    """`kubectl apply -f path -n namespace`, or the same create through the Python client without kubectl."""
    if kubectl:
        subprocess.run(
            [kubectl, f"--kubeconfig={kubeconfig}", "apply", "-n", namespace, "-f", str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return
    for doc in yaml.safe_load_all(path.read_text()):
        group, version = doc["apiVersion"].split("/")
        kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(group, version, namespace, PLURAL, doc)
