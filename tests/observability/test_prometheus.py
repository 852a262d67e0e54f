"""A real Prometheus scrapes a real `quote serve`: after traffic, every dashboard panel's query
and every recording rule returns data, exemplars lead to the request behind them; promtool accepts
(and unit-tests) the rules."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quote_serving.observability.dashboards import panel_queries
from tests.observability.conftest import Served
from tests.observability.support import MODEL, chat_body, free_port, sse_request_id, wait_for

INFRA = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$model": ".*", "$mod": ".*", "$tenant": ".*"}


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package `prometheus`: apt-get install prometheus)")
    return path


@pytest.fixture(scope="module")
def prometheus(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = binary("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    target = served.server.base_url.removeprefix("http://")
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{INFRA / 'rules.yml'}']\n"
        "scrape_configs:\n"
        f"  - {{job_name: quote-serving, metrics_path: /metrics, static_configs: [{{targets: ['{target}']}}]}}\n"
    )
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [exe, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", "--enable-feature=exemplar-storage"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (work / "prometheus.log").read_text()
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30)
    yield url
    process.terminate()
    process.wait(timeout=15)


def traffic(http: httpx.Client) -> None:
    """Requests that touch every metric: mods that backtrack and fail, streaming, completions."""
    http.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter"))
    sse_request_id(http, chat_body(f"{MODEL}/rewriter"))
    assert http.post("/v1/chat/completions", json=chat_body(f"{MODEL}/failer")).status_code == 422
    http.post("/v1/chat/completions", json=chat_body(MODEL, max_tokens=8))
    http.post("/v1/completions", json={"model": MODEL, "prompt": "Once", "max_tokens": 8, "temperature": 0})


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def has_data(result: list[dict[str, Any]], placeholder: bool) -> bool:
    if placeholder:  # metrics other components will feed: a 0 from `or on() vector(0)` until then
        return bool(result)
    return any(r["metric"] and not math.isnan(float(r["value"][1])) for r in result)


def test_every_dashboard_panel_and_recording_rule_returns_data(prometheus: str, http_served: httpx.Client) -> None:
    wait_for(lambda: query(prometheus, 'up{job="quote-serving"} == 1'), timeout=30)
    traffic(http_served)
    time.sleep(2.5)  # two more scrapes: the second wave makes every new series' rate non-zero
    traffic(http_served)
    for name, title, expr in panel_queries():
        placeholder = "or on() vector(0)" in expr
        promql = substitute(expr)
        wait_for(
            lambda promql=promql, placeholder=placeholder: has_data(query(prometheus, promql), placeholder), timeout=30
        )
        assert "$" not in promql, (name, title)

    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {g["name"] for g in rules} == {"quote.recording", "quote.alerts"}
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"])
    for rule in next(g for g in rules if g["name"] == "quote.recording")["rules"]:
        wait_for(lambda rule=rule: has_data(query(prometheus, rule["name"]), placeholder=False), timeout=30)


def exemplar_trace_ids(prometheus: str, selector: str) -> set[str]:
    now = time.time()
    params = {"query": selector, "start": now - 300, "end": now + 60}
    body = httpx.get(f"{prometheus}/api/v1/query_exemplars", params=params, timeout=10).json()
    assert body["status"] == "success", body
    return {e["labels"].get("trace_id", "") for series in body["data"] for e in series["exemplars"]}


def test_prometheus_stores_the_trace_id_exemplars_of_a_request(prometheus: str, http_served: httpx.Client) -> None:
    wait_for(lambda: query(prometheus, 'up{job="quote-serving"} == 1'), timeout=30)
    request_id = http_served.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter")).json()["id"]
    for selector in (
        'quote_request_duration_seconds_bucket{mod="rewriter"}',
        'quote_mod_call_duration_seconds_bucket{mod="rewriter"}',
        'quote_interventions_total{mod="rewriter"}',
    ):
        wait_for(lambda selector=selector: request_id in exemplar_trace_ids(prometheus, selector), timeout=30)


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    promtool = binary("promtool")
    for args, cwd in [
        (["check", "rules", "rules.yml"], INFRA),
        (["test", "rules", "rules_test.yml"], INFRA),
        (["check", "config", "prometheus.yml"], INFRA),
    ]:
        result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
