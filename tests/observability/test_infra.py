"""infra/: the committed dashboards are what the code builds; configs hang together."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from quote_serving.observability.dashboards import TRACE_LINK, build_dashboards, data_links, panel_queries, render
from quote_serving.observability.metrics import METRICS

INFRA = Path(__file__).resolve().parents[2] / "infra"
METRIC_NAME = re.compile(r"\b(quote_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[{\[)\s])")


def test_committed_dashboards_equal_what_the_code_builds() -> None:
    built = build_dashboards()
    committed = {p.name: p.read_text(encoding="utf-8") for p in (INFRA / "grafana" / "dashboards").glob("*.json")}
    assert set(committed) == set(built), "run: python -m quote_serving.observability.dashboards"
    for name, dashboard in built.items():
        assert committed[name] == render(dashboard), (
            f"{name} is stale: python -m quote_serving.observability.dashboards"
        )


def test_dashboards_cover_the_issue_and_query_only_declared_metrics() -> None:
    titles = {title for _, title, _ in panel_queries()}
    for wanted in (
        "Interventions by mod and action",
        "Mod call latency by mod",
        "Mod errors by mod and kind",
        "Completion tokens by tenant",
        "Time to first token",
        "Time per output token",
    ):
        assert wanted in titles
    declared = {spec.name for spec in METRICS}
    for name, title, expr in panel_queries():
        used = set(METRIC_NAME.findall(expr))
        assert used and used <= declared, (name, title, used - declared)


def test_panels_have_unique_ids_and_every_dashboard_a_unique_uid() -> None:
    dashboards = build_dashboards().values()
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    for dashboard in dashboards:
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        json.dumps(dashboard)  # plain JSON


def test_exemplar_panels_and_trace_store_tables_link_each_trace_id_to_the_timeline() -> None:
    for name, dashboard in build_dashboards().items():
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        for panel in dashboard["panels"]:
            targets = panel.get("targets", [])
            exemplars = any(t.get("exemplar") for t in targets)
            tables = [t for t in targets if "url" in t]
            if not (exemplars or tables):
                continue
            (override,) = panel["fieldConfig"]["overrides"]
            assert override["matcher"] == {"id": "byName", "options": "trace_id"}, (name, panel["title"])
            assert "timeline" in variables
            for target in tables:
                assert "trace_id" in [c["text"] for c in target["columns"]]
    panels = {title for _, title, _ in data_links()}
    assert {"Time to first token", "Mod call latency by mod", "Recent traces with errors or erasures"} <= panels
    assert {url for _, _, url in data_links()} == {TRACE_LINK}


def test_collector_pipeline_uses_only_defined_components() -> None:
    config = yaml.safe_load((INFRA / "otel-collector.yaml").read_text())
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"] and "http" in config["receivers"]["otlp"]["protocols"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(traces[kind]) <= set(config[kind])
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    assert "tempo:4317" in config["exporters"]["otlp/traces"]["endpoint"]


def test_grafana_provisioning_parses() -> None:
    provisioning = INFRA / "grafana" / "provisioning"
    assert (
        yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]["type"]
        == "prometheus"
    )
    assert yaml.safe_load((provisioning / "dashboards" / "quote.yml").read_text())["providers"][0]["type"] == "file"
