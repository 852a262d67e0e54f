"""/metrics: what one request adds to each metric, read back through the exposition format."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from quote_serving.observability.metrics import METRICS, QuoteMetrics
from tests.observability.support import MODEL, chat_body

REPO = Path(__file__).resolve().parents[2]


def scrape(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_a_backtracking_request_is_counted_everywhere(http_local: httpx.Client) -> None:
    mm = {"model": MODEL, "mod": "rewriter"}
    before = scrape(http_local)
    response = http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter")).json()
    trace = http_local.get(f"/v1/traces/{response['id']}").json()
    after = scrape(http_local)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    finish = response["choices"][0]["finish_reason"]
    assert delta("quote_requests_total", **mm, tenant="none", finish_reason=finish) == 1
    assert delta("quote_prompt_tokens_total", **mm) == response["usage"]["prompt_tokens"]
    assert delta("quote_completion_tokens_total", **mm) == response["usage"]["completion_tokens"]
    backtracks = sum(c["action"] == "backtrack" for c in trace["mod_calls"])
    assert delta("quote_interventions_total", **mm, action="backtrack") == backtracks > 0
    assert delta("quote_erased_tokens_total", **mm) == sum(t["erased"] for t in trace["tokens"])
    assert delta("quote_forced_tokens_total", **mm) == sum(t["kind"] == "forced" for t in trace["tokens"])
    assert delta("quote_mod_call_duration_seconds_count", **mm) == len(trace["mod_calls"])
    assert delta("quote_time_to_first_token_seconds_count", **mm) == 1
    assert delta("quote_time_per_output_token_seconds_count", **mm) == 1
    assert delta("quote_mod_errors_total", **mm) == 0
    assert ("quote_requests_in_flight", frozenset({("model", MODEL)})) in after


def test_a_mod_failure_is_counted_by_kind(http_local: httpx.Client) -> None:
    before = scrape(http_local)
    assert http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/failer")).status_code == 422
    after = scrape(http_local)
    labels = {"model": MODEL, "mod": "failer", "kind": "exception"}
    assert value(after, "quote_mod_errors_total", **labels) - value(before, "quote_mod_errors_total", **labels) == 1


def test_every_declared_metric_is_exported_and_documented(http_local: httpx.Client) -> None:
    text = http_local.get("/metrics").text
    documented = (REPO / "infra" / "README.md").read_text()
    for spec in METRICS:
        base = spec.name.removesuffix("_total")
        assert re.search(rf"^# TYPE {base}(_total)? {spec.kind}$", text, re.M), spec.name
        assert f"`{spec.name}`" in documented, f"{spec.name} missing from infra/README.md"


def test_apps_in_one_process_keep_separate_registries() -> None:
    first, second = QuoteMetrics(), QuoteMetrics(CollectorRegistry())
    first.requests.labels("m", "none", "none", "stop").inc()
    labels = {"model": "m", "mod": "none", "tenant": "none", "finish_reason": "stop"}
    assert first.registry.get_sample_value("quote_requests_total", labels) == 1
    assert second.registry.get_sample_value("quote_requests_total", labels) is None
