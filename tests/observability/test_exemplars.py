"""Exemplars: a scrape that asks for OpenMetrics finds the request's id on its latency and mod-call
buckets and on its intervention counters; a plain scrape stays the classic text format."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.observability.support import MODEL, chat_body

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def exemplars(text: str) -> dict[str, set[str]]:
    """Metric family → the trace ids its samples' exemplars name."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.exemplar is not None:
                found.setdefault(family.name, set()).add(sample.exemplar.labels["trace_id"])
    return found


def test_an_openmetrics_scrape_links_latency_and_interventions_to_the_request(http_local: httpx.Client) -> None:
    response: dict[str, Any] = http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter")).json()
    scraped = http_local.get("/metrics", headers={"Accept": OPENMETRICS})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert scraped.text.endswith("# EOF\n")
    linked = exemplars(scraped.text)
    for family in (
        "quote_request_duration_seconds",
        "quote_time_to_first_token_seconds",
        "quote_time_per_output_token_seconds",
        "quote_queue_wait_seconds",
        "quote_mod_call_duration_seconds",
        "quote_interventions",
        "quote_erased_tokens",
    ):
        assert response["id"] in linked.get(family, set()), family


def test_a_plain_scrape_has_no_exemplars(http_local: httpx.Client) -> None:
    http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter"))
    scraped = http_local.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    assert " # {" not in scraped.text and "# EOF" not in scraped.text
