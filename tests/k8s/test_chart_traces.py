"""traces.*: replicas ship to the registry's trace store, the registry signs share links, Grafana
gets the data sources the dashboards need and the dashboards' trace links lead to the gateway."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
import yaml

from .apiserver import ApiServer
from .chart_kit import EVERYTHING_ON, apply, documents, helm_template, run, server_version
from .kit import CHART

pytestmark = pytest.mark.k8s

TRACES_ON = [
    "traces.shareSecret=quote-share",
    "traces.timelineUrl=https://quote.example.com",
    "traces.grafana.datasources.enabled=true",
    "traces.grafana.datasources.prometheusUrl=http://prometheus-operated.monitoring:9090",
]


def _render(helm: str, *sets: str) -> dict[str, dict[str, Any]]:
    docs = documents(helm_template(helm, namespace="quote-system", sets=[*EVERYTHING_ON, *sets]))
    return {d["kind"] + "/" + d["metadata"]["name"]: d for d in docs}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container.get("env", [])}


def test_replicas_ship_traces_and_everything_signs_with_one_share_secret(helm: str) -> None:
    found = _render(helm, *TRACES_ON)
    secret = {"secretKeyRef": {"name": "quote-share", "key": "secret"}}
    (runtime,) = found["ClusterServingRuntime/quote"]["spec"]["containers"]
    replica = _env(runtime)
    assert replica["QUOTE_TRACE_STORE_URL"] == "http://quote-registry.quote-system.svc"
    assert replica["QUOTE_REPLICA_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert replica["QUOTE_SHARE_SECRET"] == {"secretKeyRef": {**secret["secretKeyRef"], "optional": True}}
    (registry,) = found["Deployment/quote-registry"]["spec"]["template"]["spec"]["containers"]
    assert _env(registry)["QUOTE_SHARE_SECRET"] == secret
    (gateway,) = found["Deployment/quote-gateway"]["spec"]["template"]["spec"]["containers"]
    assert _env(gateway)["QUOTE_GATEWAY_REGISTRY_URL"] == "http://quote-registry.quote-system.svc"  # /v1/traces


def test_grafana_gets_the_trace_store_and_an_exemplar_linked_prometheus(helm: str) -> None:
    found = _render(helm, *TRACES_ON)
    config = found["ConfigMap/quote-grafana-datasources"]
    assert config["metadata"]["labels"]["grafana_datasource"] == "1"
    sources = {d["uid"]: d for d in yaml.safe_load(config["data"]["quote-datasources.yaml"])["datasources"]}
    store = sources["quote-traces"]
    assert store["type"] == "yesoreyeram-infinity-datasource"
    assert store["url"] == "http://quote-registry.quote-system.svc" and store["jsonData"]["allowedHosts"] == [
        store["url"]
    ]
    assert store["secureJsonData"]["bearerToken"] == "$QUOTE_GRAFANA_API_KEY"  # from Grafana's environment
    (destination,) = sources["quote-prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"
    # `$$` is Grafana's escape for a literal `$` in provisioning files: ${__value.raw} reaches the link.
    assert destination["url"] == "https://quote.example.com/timeline?trace=$${__value.raw}"

    dashboards = [d for k, d in found.items() if k.startswith("ConfigMap/") and "dashboard" in k]
    recent = next(d for d in dashboards if "recent-errors" in d["metadata"]["name"])
    linked = 0
    for config in dashboards:
        (text,) = config["data"].values()
        for variable in json.loads(text)["templating"]["list"]:
            if variable["name"] == "timeline":
                assert variable["query"] == variable["current"]["value"] == "https://quote.example.com"
                linked += 1
        assert "localhost:8000" not in text
    assert linked == 3  # interventions, serving, recent errors
    (text,) = recent["data"].values()
    assert {t["url"] for p in json.loads(text)["panels"] for t in p.get("targets", [])} == {"/v1/traces/recent-errors"}


def test_defaults_ship_traces_but_provision_no_datasource_and_keep_links_local(helm: str) -> None:
    found = _render(helm)
    assert "ConfigMap/quote-grafana-datasources" not in found
    (registry,) = found["Deployment/quote-registry"]["spec"]["template"]["spec"]["containers"]
    assert "QUOTE_SHARE_SECRET" not in _env(registry)
    (runtime,) = found["ClusterServingRuntime/quote"]["spec"]["containers"]
    assert "QUOTE_TRACE_STORE_URL" in _env(runtime) and "QUOTE_SHARE_SECRET" not in _env(runtime)
    shipped = {k: d for k, d in found.items() if k.startswith("ConfigMap/") and "dashboard" in k}
    assert sum("http://localhost:8000" in next(iter(d["data"].values())) for d in shipped.values()) == 3
    assert "QUOTE_TRACE_STORE_URL" not in _env(
        _render(helm, "traces.ship=false")["ClusterServingRuntime/quote"]["spec"]["containers"][0]
    )


def test_the_chart_lints_with_traces_on_and_refuses_a_bad_timeline_url(helm: str) -> None:
    run([helm, "lint", "--strict", str(CHART), *[f"--set={s}" for s in [*EVERYTHING_ON, *TRACES_ON]]])
    with pytest.raises(AssertionError) as refused:
        helm_template(helm, namespace="quote-system", sets=["traces.timelineUrl=javascript:alert(1)"])
    assert "traces.timelineUrl" in str(refused.value)


def test_the_api_server_accepts_the_chart_with_traces_on(
    helm: str, kubectl: str | None, apiserver: ApiServer, admin: kubernetes.client.ApiClient
) -> None:
    sets = [*EVERYTHING_ON, *TRACES_ON]
    manifests = helm_template(helm, namespace="quote-system", sets=sets, kube_version=server_version(admin))
    applied = apply(manifests, kubectl=kubectl, api=admin, kubeconfig=apiserver.kubeconfig(), dry_run=True)
    assert len(applied) == len(documents(manifests))
