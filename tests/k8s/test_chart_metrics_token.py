"""metrics.tokenSecret: the gateway demands the token and every monitor endpoint sends it."""

from __future__ import annotations

import pytest

from .chart_kit import EVERYTHING_ON, documents, helm_template

pytestmark = pytest.mark.k8s


def _by_kind(helm: str, *sets: str) -> dict[str, dict]:  # type: ignore[type-arg]
    docs = documents(helm_template(helm, namespace="quote-system", sets=[*EVERYTHING_ON, *sets]))
    return {d["kind"] + "/" + d["metadata"]["name"]: d for d in docs}


def _gateway_env(found: dict[str, dict]) -> dict[str, object]:  # type: ignore[type-arg]
    (deploy,) = [d for k, d in found.items() if k.startswith("Deployment/") and k.endswith("gateway")]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container["env"]}


def test_the_token_secret_reaches_the_gateway_and_every_monitor(helm: str) -> None:
    found = _by_kind(helm, "metrics.tokenSecret=quote-metrics")
    token = {"secretKeyRef": {"name": "quote-metrics", "key": "token"}}
    assert _gateway_env(found)["QUOTE_GATEWAY_METRICS_TOKEN"] == token
    endpoints = [e for k, d in found.items() if k.startswith("ServiceMonitor/") for e in d["spec"]["endpoints"]]
    endpoints += [e for k, d in found.items() if k.startswith("PodMonitor/") for e in d["spec"]["podMetricsEndpoints"]]
    assert len(endpoints) == 3
    for endpoint in endpoints:
        assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "quote-metrics", "key": "token"}}


def test_without_a_token_secret_nothing_changes(helm: str) -> None:
    found = _by_kind(helm)
    assert "QUOTE_GATEWAY_METRICS_TOKEN" not in _gateway_env(found)
    monitors = [d for k, d in found.items() if k.startswith(("ServiceMonitor/", "PodMonitor/"))]
    assert monitors and all("authorization" not in str(d["spec"]) for d in monitors)
