"""Grafana dashboards as code: `build_dashboards()` → `infra/grafana/dashboards/*.json`.

    python -m quote_serving.observability.dashboards [out_dir]   (default infra/grafana/dashboards)

The JSON files are committed (Grafana provisions them as they are) and a test checks they equal
what this module builds, so a dashboard is changed here, never by hand. Queries use only metrics
declared in `metrics.METRICS`; each dashboard has a Prometheus datasource variable and label
filters (`$model`, `$mod`, `$tenant`). Panels over metrics that other components will feed
(rate-limit refusals, registry publishes) fall back to 0 with `or on() vector(0)`, so "none
yet" reads as zero rather than as a broken panel.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["build_dashboards", "main", "panel_queries", "write_dashboards"]

DEFAULT_OUT = Path("infra/grafana/dashboards")
_DS = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "$__rate_interval"
_MM = 'model=~"$model", mod=~"$mod"'


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


class _Layout:
    """Hands out panel ids and grid positions, two panels per row of the 24-column grid."""

    def __init__(self) -> None:
        self.next_id, self.y, self.x = 1, 0, 0

    def row(self, title: str) -> dict[str, Any]:
        self.y += 0 if self.x == 0 else 8
        self.x = 0
        panel = {"type": "row", "id": self._id(), "title": title, "collapsed": False, "panels": []}
        panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": self.y}
        self.y += 1
        return panel

    def panel(
        self, title: str, targets: list[tuple[str, str]], *, unit: str, description: str, kind: str = "timeseries"
    ) -> dict[str, Any]:
        grid = {"h": 8, "w": 12, "x": self.x, "y": self.y}
        self.x = 12 - self.x
        self.y += 8 if self.x == 0 else 0
        refs = "ABCDEFGH"
        return {
            "type": kind,
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": _DS,
            "gridPos": grid,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
            "targets": [_target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(targets)],
        }

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": _DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


def _dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]], variables: list[str]
) -> dict[str, Any]:
    known = {
        "model": _variable("model", "Model", "label_values(quote_requests_total, model)"),
        "mod": _variable("mod", "Mod", 'label_values(quote_requests_total{model=~"$model"}, mod)'),
        "tenant": _variable("tenant", "Tenant", "label_values(quote_requests_total, tenant)"),
    }
    datasource = {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus"}
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["quote"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [datasource, *(known[v] for v in variables)]},
        "annotations": {"list": []},
        "panels": panels,
    }


def _quantiles(metric: str, by: str, labels: str) -> list[tuple[str, str]]:
    rate = f"sum by (le, {by}) (rate({metric}_bucket{{{labels}}}[{_RATE}]))"
    return [(f"histogram_quantile({q}, {rate})", f"{{{{{by}}}}} p{int(q * 100)}") for q in (0.5, 0.99)]


def _interventions() -> dict[str, Any]:
    g = _Layout()
    per = f'sum by (mod) (rate(quote_requests_total{{{_MM}, mod!="none"}}[{_RATE}]))'
    panels = [
        g.row("Interventions"),
        g.panel(
            "Interventions by mod and action",
            [(f"sum by (mod, action) (rate(quote_interventions_total{{{_MM}}}[{_RATE}]))", "{{mod}} · {{action}}")],
            unit="ops",
            description="Mod actions other than noop, per second.",
        ),
        g.panel(
            "Interventions per request",
            [(f"sum by (mod) (rate(quote_interventions_total{{{_MM}}}[{_RATE}])) / {per}", "{{mod}}")],
            unit="short",
            description="How often a mod acts on an average request.",
        ),
        g.panel(
            "Forced and erased tokens",
            [
                (f"sum by (mod) (rate(quote_forced_tokens_total{{{_MM}}}[{_RATE}]))", "{{mod}} forced"),
                (f"sum by (mod) (rate(quote_erased_tokens_total{{{_MM}}}[{_RATE}]))", "{{mod}} erased"),
            ],
            unit="short",
            description="Tokens per second appended without sampling, and erased by backtracking.",
        ),
        g.row("Mod latency"),
        g.panel(
            "Mod call latency by mod",
            _quantiles("quote_mod_call_duration_seconds", "mod", _MM),
            unit="s",
            description="Latency of one mod call (the budget is QUOTE_MOD_BUDGET_MS, 2 s by default).",
        ),
        g.panel(
            "Mod call latency by event (p99)",
            [
                (
                    "histogram_quantile(0.99, sum by (le, event) "
                    f"(rate(quote_mod_call_duration_seconds_bucket{{{_MM}}}[{_RATE}])))",
                    "{{event}}",
                )
            ],
            unit="s",
            description="Which event handler is slow: Prefilled, ForwardPass, Sampled or Added.",
        ),
        g.row("Mod errors"),
        g.panel(
            "Mod errors by mod and kind",
            [(f"sum by (mod, kind) (rate(quote_mod_errors_total{{{_MM}}}[{_RATE}]))", "{{mod}} · {{kind}}")],
            unit="ops",
            description="Requests failed by their mod: exception, timeout, invalid_action, emit_error.",
        ),
        g.panel(
            "Mod error ratio",
            [(f"sum by (mod) (rate(quote_mod_errors_total{{{_MM}}}[{_RATE}])) / {per}", "{{mod}}")],
            unit="percentunit",
            description="Share of a mod's requests that its mod failed.",
        ),
    ]
    return _dashboard(
        "quote-interventions",
        "Quote · Interventions",
        "What mods do to generation: actions, forced/erased tokens, mod latency, mod errors.",
        panels,
        ["model", "mod"],
    )


def _serving() -> dict[str, Any]:
    g = _Layout()
    panels = [
        g.row("Latency"),
        g.panel(
            "Time to first token",
            _quantiles("quote_time_to_first_token_seconds", "mod", _MM),
            unit="s",
            description="From submit to the first output token (TTFT), p50 and p99.",
        ),
        g.panel(
            "Time per output token",
            _quantiles("quote_time_per_output_token_seconds", "mod", _MM),
            unit="s",
            description="Decode time per token after the first (TPOT), p50 and p99.",
        ),
        g.panel(
            "Queue wait (p95)",
            [
                (
                    'histogram_quantile(0.95, sum by (le, model) (rate(quote_queue_wait_seconds_bucket{model=~"$model"}'
                    f"[{_RATE}])))",
                    "{{model}}",
                )
            ],
            unit="s",
            description="From submit to admission into the running batch.",
        ),
        g.panel(
            "Request duration (p95)",
            [
                (
                    "histogram_quantile(0.95, sum by (le, mod) "
                    f"(rate(quote_request_duration_seconds_bucket{{{_MM}}}[{_RATE}])))",
                    "{{mod}}",
                )
            ],
            unit="s",
            description="From submit to the end of the request.",
        ),
        g.row("Traffic"),
        g.panel(
            "Requests by finish reason",
            [(f"sum by (finish_reason) (rate(quote_requests_total{{{_MM}}}[{_RATE}]))", "{{finish_reason}}")],
            unit="reqps",
            description="stop, length, tool_calls, error, abort (client went away).",
        ),
        g.panel(
            "Output tokens per second",
            [(f"sum by (model) (rate(quote_completion_tokens_total{{{_MM}}}[{_RATE}]))", "{{model}}")],
            unit="short",
            description="Completion tokens returned to clients (erased ones excluded).",
        ),
        g.panel(
            "Requests in flight",
            [('sum by (model) (quote_requests_in_flight{model=~"$model"})', "{{model}}")],
            unit="short",
            description="Queued or decoding right now.",
        ),
    ]
    return _dashboard(
        "quote-serving",
        "Quote · Serving",
        "Latency (TTFT, TPOT, queue) and traffic of the serving replicas.",
        panels,
        ["model", "mod"],
    )


def _tenants() -> dict[str, Any]:
    g = _Layout()
    tenant = 'tenant=~"$tenant"'
    panels = [
        g.row("Usage"),
        g.panel(
            "Completion tokens by tenant",
            [(f"sum by (tenant) (rate(quote_completion_tokens_total{{{tenant}}}[{_RATE}]))", "{{tenant}}")],
            unit="short",
            description="Tokens per second returned to each tenant.",
        ),
        g.panel(
            "Prompt tokens by tenant",
            [(f"sum by (tenant) (rate(quote_prompt_tokens_total{{{tenant}}}[{_RATE}]))", "{{tenant}}")],
            unit="short",
            description="Prompt tokens per second prefilled for each tenant.",
        ),
        g.panel(
            "Requests by tenant and mod",
            [(f"sum by (tenant, mod) (rate(quote_requests_total{{{tenant}}}[{_RATE}]))", "{{tenant}} · {{mod}}")],
            unit="reqps",
            description="Which tenant runs which mod.",
        ),
        g.panel(
            "Tokens in the time range",
            [(f"sum by (tenant) (increase(quote_completion_tokens_total{{{tenant}}}[$__range]))", "{{tenant}}")],
            unit="short",
            description="Completion tokens per tenant over the dashboard's time range (billing view).",
            kind="bargauge",
        ),
        g.row("Limits and publishing"),
        g.panel(
            "Rate-limit refusals by tenant",
            [
                (
                    f"sum by (tenant, limit) (rate(quote_rate_limit_refusals_total{{{tenant}}}[{_RATE}])) "
                    "or on() vector(0)",
                    "{{tenant}} · {{limit}}",
                )
            ],
            unit="reqps",
            description="Requests the gateway refused for a tenant's limit (0 until the gateway reports any).",
        ),
        g.panel(
            "Registry publishes",
            [
                (
                    f"sum by (tenant, outcome) (rate(quote_registry_publishes_total{{{tenant}}}[{_RATE}])) "
                    "or on() vector(0)",
                    "{{tenant}} · {{outcome}}",
                )
            ],
            unit="ops",
            description="Mod versions published or rejected (0 until the registry reports any).",
        ),
    ]
    return _dashboard(
        "quote-tenants",
        "Quote · Tenants",
        "Per-tenant usage, rate-limit refusals and registry publishes.",
        panels,
        ["tenant"],
    )


def build_dashboards() -> dict[str, dict[str, Any]]:
    """File name → Grafana dashboard JSON model."""
    return {
        "quote-interventions.json": _interventions(),
        "quote-serving.json": _serving(),
        "quote-tenants.json": _tenants(),
    }


def panel_queries(dashboards: dict[str, dict[str, Any]] | None = None) -> Iterator[tuple[str, str, str]]:
    """(file, panel title, PromQL) for every query of every panel."""
    for name, dashboard in (dashboards or build_dashboards()).items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", ()):
                yield name, panel["title"], target["expr"]


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_dashboards().items():
        path = out_dir / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for path in write_dashboards(Path(args[0]) if args else DEFAULT_OUT):
        print(path)


if __name__ == "__main__":
    main()
