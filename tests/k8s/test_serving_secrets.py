"""The secrets a multi-tenant replica needs reach it: the gateway's HMAC key (so it knows each
request's tenant and runs that tenant's mods in that tenant's workers), the /metrics token and the
trace store, from the chart through the operator into every rendered serving pod."""

from __future__ import annotations

from typing import Any

import pytest

from quote_operator import parse
from quote_operator.render import Owner, children
from quote_operator.settings import OperatorSettings

from .chart_kit import EVERYTHING_ON, documents, helm_template

OWNER = Owner("m", "ns", "uid-1", 1)
SERVING = {
    "gateway_secret_secret": "quote-gateway",
    "metrics_token_secret": "quote-metrics",
    "trace_store_url": "http://quote-registry.quote-system.svc",
    "share_secret_secret": "quote-share",
}


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest["spec"]
    if "rayClusterConfig" in spec:
        groups = spec["rayClusterConfig"]["workerGroupSpecs"]
        return [c for g in groups for c in g["template"]["spec"]["containers"]]
    return [spec["predictor"]["model"]]


@pytest.mark.parametrize("runtime", ["ray", "kserve"])
def test_every_serving_container_gets_the_gateway_key_the_metrics_token_and_the_trace_store(runtime: str) -> None:
    model = parse("m", "ns", {"model": "Qwen/Qwen2.5-0.5B-Instruct", "runtime": runtime})
    (workload, *_) = children(model, OWNER, OperatorSettings(serving=SERVING))
    containers = _containers(workload.manifest)
    assert containers
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        gateway = env["QUOTE_GATEWAY_SECRET"]["valueFrom"]["secretKeyRef"]
        assert gateway == {"name": "quote-gateway", "key": "secret", "optional": False}  # no key: no start
        assert env["QUOTE_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "quote-metrics"
        assert env["QUOTE_SHARE_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "quote-share"
        assert env["QUOTE_TRACE_STORE_URL"]["value"] == SERVING["trace_store_url"]
        assert env["QUOTE_REPLICA_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_without_them_no_secret_is_referenced() -> None:
    model = parse("m", "ns", {"model": "Qwen/Qwen2.5-0.5B-Instruct"})
    (workload, *_) = children(model, OWNER, OperatorSettings())
    for container in _containers(workload.manifest):
        names = {e["name"] for e in container["env"]}
        assert not names & {
            "QUOTE_GATEWAY_SECRET",
            "QUOTE_METRICS_TOKEN",
            "QUOTE_SHARE_SECRET",
            "QUOTE_TRACE_STORE_URL",
        }


def _env(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container["env"]}


@pytest.mark.k8s
def test_the_chart_gives_the_gateway_its_key_and_the_operator_every_secrets_name(helm: str) -> None:
    sets = [*EVERYTHING_ON, "metrics.tokenSecret=quote-metrics", "traces.shareSecret=quote-share"]
    docs = documents(helm_template(helm, namespace="quote-system", sets=sets))
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    (gateway,) = [d for name, d in deployments.items() if name.endswith("gateway")]
    (operator,) = [d for name, d in deployments.items() if name.endswith("operator")]
    assert _env(gateway)["QUOTE_GATEWAY_SECRET"] == {"secretKeyRef": {"name": "quote-gateway", "key": "secret"}}
    env = _env(operator)
    assert env["QUOTE_OPERATOR_SERVING__GATEWAY_SECRET_SECRET"] == "quote-gateway"
    assert env["QUOTE_OPERATOR_SERVING__METRICS_TOKEN_SECRET"] == "quote-metrics"
    assert env["QUOTE_OPERATOR_SERVING__SHARE_SECRET_SECRET"] == "quote-share"
    assert env["QUOTE_OPERATOR_SERVING__TRACE_STORE_URL"].startswith("http://")
    # and the operator accepts exactly these settings
    settings = OperatorSettings(
        serving={
            "gateway_secret_secret": env["QUOTE_OPERATOR_SERVING__GATEWAY_SECRET_SECRET"],
            "metrics_token_secret": env["QUOTE_OPERATOR_SERVING__METRICS_TOKEN_SECRET"],
            "share_secret_secret": env["QUOTE_OPERATOR_SERVING__SHARE_SECRET_SECRET"],
            "trace_store_url": env["QUOTE_OPERATOR_SERVING__TRACE_STORE_URL"],
        }
    )
    assert settings.serving.gateway_secret_secret == "quote-gateway"
