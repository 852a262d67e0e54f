"""The operator as the chart deploys it: its container command, on exactly the chart's RBAC."""

from __future__ import annotations

from pathlib import Path

import kubernetes
import pytest

from .apiserver import ApiServer
from .chart_kit import apply, helm_template
from .conftest import OPERATOR_NAMESPACE, OPERATOR_SA
from .kit import eventually
from .operator_kit import Cluster, operator_process

pytestmark = pytest.mark.k8s


def test_operator_needs_nothing_beyond_the_charts_rbac(
    helm: str,
    kubectl: str | None,
    apiserver: ApiServer,
    admin: kubernetes.client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    rbac = helm_template(helm, namespace=OPERATOR_NAMESPACE, extra=["--show-only=templates/operator-rbac.yaml"])
    apply(rbac, kubectl=kubectl, api=admin, kubeconfig=apiserver.kubeconfig(), dry_run=False)
    cluster = Cluster(admin)
    cluster.delete_route_table()  # so the service account has to create it
    log = tmp_path / "operator.log"

    with operator_process(apiserver, OPERATOR_SA, log):
        cluster.create_model(namespace, "m", {"model": "quote-tiny", "servedModelName": f"{namespace}/m"})
        eventually(lambda: cluster.route(namespace, "m"), what="route ConfigMap created by the service account")
        cluster.set_rayservice_status(namespace, "m", {"serviceStatus": "Running"})
        cluster.wait_condition(namespace, "m", "Ready", "True")
        cluster.patch_model(namespace, "m", {"autoscaling": {"maxReplicas": 3}})
        eventually(lambda: cluster.model(namespace, "m")["status"]["observedGeneration"] == 2, what="update handled")  # type: ignore[index]
        cluster.create_model(
            namespace, "bad", {"model": "x", "servedModelName": f"{namespace}/bad", "autoscaling": {"minReplicas": 2}}
        )
        cluster.wait_condition(namespace, "bad", "Degraded", "True")
        eventually(lambda: _events_about(admin, namespace, "bad"), what="a Warning event about the bad spec posted")
        cluster.delete_model(namespace, "m")
        cluster.delete_model(namespace, "bad")
        cluster.wait_gone(namespace, "m")
        cluster.wait_gone(namespace, "bad")

    output = log.read_text()
    assert "Handler 'created' succeeded" in output and "Handler 'deleted' succeeded" in output
    assert cluster.rayservice(namespace, "m") is None and cluster.route(namespace, "m") is None
    for refusal in ("Forbidden", "forbidden", " 403"):
        assert refusal not in output, output


def _events_about(api: kubernetes.client.ApiClient, namespace: str, name: str) -> list[str]:
    events = kubernetes.client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e.message or "" for e in events if e.involved_object.name == name and e.type == "Warning"]
