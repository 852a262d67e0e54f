"""Grafana dashboards as code: `build_dashboards()` → `infra/grafana/dashboards/*.json`.

    python -m quote_serving.observability.dashboards [out_dir]   (default infra/grafana/dashboards)

The JSON files are committed (Grafana provisions them as they are) and a test checks they equal
what this module builds, so a dashboard is changed here, never by hand. Queries use only metrics
declared in `metrics.METRICS`; each dashboard has a Prometheus datasource variable and label
filters (`$model`, `$mod`, `$tenant`). Panels over metrics that other components will feed
(rate-limit refusals, registry publishes) fall back to 0 with `or on() vector(0)`, so "none
yet" reads as zero rather than as a broken panel.

From a panel to the trace behind it:

    latency / mod-call / intervention panels ── exemplars (trace_id) ──┐
    Recent errors tables (Infinity, JSON) ───── trace_id column ───────┴─► data link
        ${timeline}/timeline?trace=${__value.raw}  (the gateway's timeline page, `$timeline` variable)

The link is a field override on fields named `trace_id` — the exemplar label `exposition.py`
exports and the column the recent-errors tables name so — and `data_links()` lists every one for
the test that opens them in a browser. The recent-errors dashboard reads
`GET /v1/traces/recent-errors` through Grafana's Infinity data source (why JSON and not SQL:
`quote_registry.services.trace_errors`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TIMELINE",
    "TRACE_LINK",
    "build_dashboards",
    "data_links",
    "json_queries",
    "main",
    "panel_queries",
    "write_dashboards",
]

DEFAULT_OUT = Path("infra/grafana/dashboards")
_DS = {"type": "prometheus", "uid": "${datasource}"}
_TRACES_DS = {"type": "yesoreyeram-infinity-datasource", "uid": "${traces}"}
_RATE = "$__rate_interval"
_MM = 'model=~"$model", mod=~"$mod"'
DEFAULT_TIMELINE = "http://localhost:8000"  # `quote serve`'s default; the chart sets the gateway's URL
TRACE_LINK = "${timeline}/timeline?trace=${__value.raw}"


def _target(expr: str, legend: str, ref: str, *, exemplar: bool = False) -> dict[str, Any]:
    target = {"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}
    return target | {"exemplar": True} if exemplar else target


def _trace_links() -> list[dict[str, Any]]:
    """Field overrides that turn a `trace_id` field (exemplar label or table column) into a timeline link."""
    link = {"title": "Open trace ${__value.raw} in the timeline", "url": TRACE_LINK, "targetBlank": True}
    return [{"matcher": {"id": "byName", "options": "trace_id"}, "properties": [{"id": "links", "value": [link]}]}]


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
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str,
        description: str,
        kind: str = "timeseries",
        exemplars: bool = False,
    ) -> dict[str, Any]:
        """A Prometheus panel; `exemplars` shows the trace_id exemplars, each linked to its timeline."""
        refs = "ABCDEFGH"
        return {
            "type": kind,
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": _DS,
            "gridPos": self._grid(),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": _trace_links() if exemplars else []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
            "targets": [_target(expr, legend, refs[i], exemplar=exemplars) for i, (expr, legend) in enumerate(targets)],
        }

    def table(self, title: str, target: dict[str, Any], *, description: str, width: int = 24) -> dict[str, Any]:
        """A table over the trace store's JSON; its `trace_id` column links to the timeline."""
        return {
            "type": "table",
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": _TRACES_DS,
            "gridPos": self._grid(width, height=10),
            "fieldConfig": {"defaults": {"custom": {"filterable": True}}, "overrides": _trace_links()},
            "options": {"showHeader": True, "cellHeight": "sm"},
            "targets": [target],
        }

    def _grid(self, width: int = 12, height: int = 8) -> dict[str, int]:
        if width > 12 and self.x:
            self.x, self.y = 0, self.y + 8
        grid = {"h": height, "w": width, "x": self.x, "y": self.y}
        if width > 12:
            self.y += height
            return grid
        self.x = 12 - self.x
        self.y += height if self.x == 0 else 0
        return grid

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


def _timeline_variable() -> dict[str, Any]:
    """Where trace links lead: the gateway (or `quote serve`) that serves /timeline; editable per viewer."""
    current = {"selected": False, "text": DEFAULT_TIMELINE, "value": DEFAULT_TIMELINE}
    return {
        "type": "textbox",
        "name": "timeline",
        "label": "Timeline page at",
        "description": "Base URL of the gateway serving /timeline (trace links open there).",
        "query": DEFAULT_TIMELINE,
        "current": current,
        "options": [{**current, "selected": True}],
        "hide": 0,
    }


def _dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[str],
    *,
    datasource: str = "prometheus",
) -> dict[str, Any]:
    known = {
        "model": _variable("model", "Model", "label_values(quote_requests_total, model)"),
        "mod": _variable("mod", "Mod", 'label_values(quote_requests_total{model=~"$model"}, mod)'),
        "tenant": _variable("tenant", "Tenant", "label_values(quote_requests_total, tenant)"),
        "timeline": _timeline_variable(),
    }
    sources = {
        "prometheus": {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus"},
        "traces": {
            "type": "datasource",
            "name": "traces",
            "label": "Trace store (Infinity)",
            "query": _TRACES_DS["type"],
        },
    }
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
        "templating": {"list": [sources[datasource], *(known[v] for v in variables)]},
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
            exemplars=True,
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
            exemplars=True,
        ),
        g.row("Mod latency"),
        g.panel(
            "Mod call latency by mod",
            _quantiles("quote_mod_call_duration_seconds", "mod", _MM),
            unit="s",
            description="Latency of one mod call (the budget is QUOTE_MOD_BUDGET_MS, 2 s by default).",
            exemplars=True,
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
            exemplars=True,
        ),
        g.row("Mod errors"),
        g.panel(
            "Mod errors by mod and kind",
            [(f"sum by (mod, kind) (rate(quote_mod_errors_total{{{_MM}}}[{_RATE}]))", "{{mod}} · {{kind}}")],
            unit="ops",
            description="Requests failed by their mod: exception, timeout, invalid_action, emit_error.",
            exemplars=True,
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
        ["model", "mod", "timeline"],
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
            exemplars=True,
        ),
        g.panel(
            "Time per output token",
            _quantiles("quote_time_per_output_token_seconds", "mod", _MM),
            unit="s",
            description="Decode time per token after the first (TPOT), p50 and p99.",
            exemplars=True,
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
            exemplars=True,
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
            exemplars=True,
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
        ["model", "mod", "timeline"],
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


def _store_query(root: str, columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    """An Infinity query of GET /v1/traces/recent-errors over the dashboard's time range; (selector, name, type)."""
    return {
        "refId": "A",
        "datasource": _TRACES_DS,
        "type": "json",
        "source": "url",
        "parser": "backend",
        "format": "table",
        "url": "/v1/traces/recent-errors",
        "url_options": {
            "method": "GET",
            "params": [{"key": "since", "value": "${__from:date:iso}"}, {"key": "limit", "value": "500"}],
        },
        "root_selector": root,
        "columns": [{"selector": sel, "text": name, "type": kind} for sel, name, kind in columns],
    }


def _recent_errors() -> dict[str, Any]:
    g = _Layout()
    traces = _store_query(
        "data",
        [
            ("time", "Time", "timestamp"),
            ("id", "trace_id", "string"),
            ("tenant", "Tenant", "string"),
            ("mod", "Mod", "string"),
            ("model", "Model", "string"),
            ("finish_reason", "Finish reason", "string"),
            ("error", "Error", "boolean"),
            ("erasures", "Erased tokens", "number"),
            ("replica", "Replica", "string"),
        ],
    )
    per_mod = _store_query(
        "by_mod",
        [
            ("tenant", "Tenant", "string"),
            ("mod", "Mod", "string"),
            ("errors", "Failed requests", "number"),
            ("with_erasures", "Requests with erasures", "number"),
            ("erased_tokens", "Erased tokens", "number"),
            ("latest", "Newest", "timestamp"),
            ("latest_id", "trace_id", "string"),
        ],
    )
    panels = [
        g.row("Per mod"),
        g.table(
            "Errors and erasures per mod",
            per_mod,
            description="Failed requests and requests with erased tokens per mod in the time range (newest 500).",
        ),
        g.row("Traces"),
        g.table(
            "Recent traces with errors or erasures",
            traces,
            description="Newest first; trace_id opens the request's token timeline.",
        ),
    ]
    return _dashboard(
        "quote-recent-errors",
        "Quote · Recent errors",
        "Traces whose mod failed or erased tokens, per mod, from the trace store; each opens in the timeline.",
        panels,
        ["timeline"],
        datasource="traces",
    )


def build_dashboards() -> dict[str, dict[str, Any]]:
    """File name → Grafana dashboard JSON model."""
    return {
        "quote-interventions.json": _interventions(),
        "quote-recent-errors.json": _recent_errors(),
        "quote-serving.json": _serving(),
        "quote-tenants.json": _tenants(),
    }


def panel_queries(dashboards: dict[str, dict[str, Any]] | None = None) -> Iterator[tuple[str, str, str]]:
    """(file, panel title, PromQL) for every Prometheus query of every panel."""
    for name, dashboard in (dashboards or build_dashboards()).items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", ()):
                if "expr" in target:
                    yield name, panel["title"], target["expr"]


def json_queries(dashboards: dict[str, dict[str, Any]] | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file, panel title, Infinity target) for every query of the trace store."""
    for name, dashboard in (dashboards or build_dashboards()).items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", ()):
                if "url" in target:
                    yield name, panel["title"], target


def data_links(dashboards: dict[str, dict[str, Any]] | None = None) -> Iterator[tuple[str, str, str]]:
    """(file, panel title, URL template) for every data link, field defaults and overrides alike."""
    for name, dashboard in (dashboards or build_dashboards()).items():
        for panel in dashboard["panels"]:
            config = panel.get("fieldConfig", {})
            links = list(config.get("defaults", {}).get("links", ()))
            for override in config.get("overrides", ()):
                links += [link for p in override["properties"] if p["id"] == "links" for link in p["value"]]
            for link in links:
                yield name, panel["title"], link["url"]


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
