"""The Helm chart: lints, validates its values, renders dashboards, and the API server accepts what it renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kubernetes
import pytest
import yaml

from .apiserver import ApiServer
from .chart_kit import EVERYTHING_ON, apply, documents, helm_template, run, server_version
from .kit import CHART, REPO

pytestmark = pytest.mark.k8s


@pytest.mark.parametrize("sets", [[], EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_chart_lints(helm: str, sets: list[str]) -> None:
    run([helm, "lint", "--strict", str(CHART), *[f"--set={s}" for s in sets]])


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["gateway.autoscaling.minReplicas=0"], "gateway.autoscaling.minReplicas: Must be greater than or equal to 1"),
        (["image.pullPolicy=Sometimes"], "image.pullPolicy"),
        (["gateway.replica=3"], "Additional property replica is not allowed"),
        (["postgresql.enabled=false"], "registry.enabled needs a database"),
    ],
)
def test_chart_refuses_bad_values(helm: str, sets: list[str], complaint: str) -> None:
    with pytest.raises(AssertionError) as refused:
        helm_template(helm, namespace="quote-system", sets=sets)

    assert complaint in str(refused.value)


def test_external_database_replaces_the_bundled_one(helm: str) -> None:
    sets = ["postgresql.enabled=false", "registry.database.existingSecret=registry-db"]
    docs = documents(helm_template(helm, namespace="quote-system", sets=sets))

    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    [registry] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "quote-registry"]
    env = {e["name"]: e for e in registry["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["QUOTE_REGISTRY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "registry-db",
        "key": "database-url",
    }


def test_each_dashboard_file_becomes_a_sidecar_configmap(helm: str, tmp_path: Path) -> None:
    chart = tmp_path / "quote"
    shutil.copytree(CHART, chart)
    (chart / "dashboards" / "quote_overview.json").write_text(json.dumps({"title": "Quote overview", "panels": []}))

    docs = documents(helm_template(helm, namespace="quote-system", chart=chart))

    [dashboard] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("quote-overview")]
    assert dashboard["metadata"]["name"] == "quote-dashboard-quote-overview"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["quote_overview.json"])["title"] == "Quote overview"


def test_chart_ships_the_generated_dashboards(helm: str) -> None:
    generated = {p.name: p.read_text() for p in (REPO / "infra" / "grafana" / "dashboards").glob("*.json")}
    shipped = {p.name: p.read_text() for p in (CHART / "dashboards").glob("*.json")}
    assert shipped == generated, "run: cp infra/grafana/dashboards/*.json charts/quote/dashboards/"

    docs = documents(helm_template(helm, namespace="quote-system"))

    names = {d["metadata"]["name"] for d in docs if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"}
    assert len(names) == len(generated)


def test_chart_serving_runtime_matches_the_kserve_example(helm: str) -> None:
    docs = documents(helm_template(helm, namespace="quote-system", sets=["kserve.servingRuntime.enabled=true"]))
    example = yaml.safe_load((REPO / "examples" / "kserve" / "serving-runtime.yaml").read_text())

    [runtime] = [d for d in docs if d["kind"] == "ClusterServingRuntime"]
    [ours], [theirs] = runtime["spec"]["containers"], example["spec"]["containers"]
    same = ("name", "command", "args", "ports", "readinessProbe", "livenessProbe", "securityContext", "volumeMounts")
    assert {k: ours[k] for k in same} == {k: theirs[k] for k in same}
    assert runtime["spec"]["volumes"] == example["spec"]["volumes"]
    assert runtime["metadata"]["name"] == example["metadata"]["name"] == "quote"
    assert runtime["spec"]["supportedModelFormats"] == example["spec"]["supportedModelFormats"]


def test_operator_rbac_is_least_privilege(helm: str) -> None:
    docs = documents(helm_template(helm, namespace="quote-system", extra=["--show-only=templates/operator-rbac.yaml"]))

    [cluster_role] = [d for d in docs if d["kind"] == "ClusterRole"]
    verbs = {
        (g, r): set(rule["verbs"])
        for rule in cluster_role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert "*" not in {v for vs in verbs.values() for v in vs}
    assert ("", "configmaps") not in verbs and ("", "secrets") not in verbs  # the route ConfigMap is namespaced
    assert verbs[("ray.io", "rayservices")] == {"get", "list", "create", "patch", "delete"}
    [role] = [d for d in docs if d["kind"] == "Role"]
    assert {"resourceNames": ["quote-routes"], "verbs": ["get", "patch"]}.items() <= role["rules"][1].items()


@pytest.mark.parametrize("sets", [[], EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_rendered_chart_passes_server_side_dry_run(
    helm: str, kubectl: str | None, apiserver: ApiServer, admin: kubernetes.client.ApiClient, sets: list[str]
) -> None:
    manifests = helm_template(helm, namespace="quote-system", sets=sets, kube_version=server_version(admin))

    applied = apply(manifests, kubectl=kubectl, api=admin, kubeconfig=apiserver.kubeconfig(), dry_run=True)

    kinds = {d["kind"] for d in documents(manifests)}
    assert {"Deployment", "ClusterRole", "HorizontalPodAutoscaler", "StatefulSet"} <= kinds
    assert len(applied) == len(documents(manifests))
    if sets:
        assert {"ServiceMonitor", "PodMonitor", "ClusterServingRuntime"} <= kinds
