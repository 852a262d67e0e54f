"""Prometheus metrics: one table of what Quote exports, one registry per app, one runtime observer.

    METRICS (specs) ──► QuoteMetrics(registry) ──► GET /metrics (text exposition)
                              ▲
    ModRuntime ── on_first_token / on_finished ──► MetricsObserver (counts from the final trace)

Every metric is declared once in `METRICS`; the collectors, `infra/README.md`'s table and the
Grafana dashboards (`dashboards.py`) all refer to these names. Each app gets its own
`CollectorRegistry` (never the global one), so several apps — tests, the gateway embedding a
replica — can live in one process. Label values are bounded: model, mod name, tenant id, action,
event, finish reason, error kind; never a request id or free text. A request without a mod or a
tenant is labelled `none`.

Latency and mod-call histograms and the intervention, erasure and mod-error counters carry a
`trace_id` exemplar — the request id the timeline page opens — exposed in OpenMetrics
(`exposition.py`), so a Grafana panel leads to the request behind a slow bucket or an error.

Some metrics are defined here but incremented by components that come later (the gateway's
rate limiter, the registry's publishes), so dashboards and alerts can already query them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from quote_serving.observability.exposition import exemplar
from quote_serving.observability.interventions import interventions, token_counts
from quote_serving.runtime.observers import RuntimeObserver

if TYPE_CHECKING:
    from quote_mod_sdk.generation import ModCall, RequestTrace
    from quote_serving.runtime.requests import RequestHandle

__all__ = ["METRICS", "MOD_ERROR_KINDS", "NONE", "MetricSpec", "MetricsObserver", "QuoteMetrics"]

NONE = "none"  # label value of a request without a mod or without a tenant
MOD_ERROR_KINDS = frozenset({"exception", "timeout", "invalid_action", "emit_error"})

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Mod calls run per token, so most take microseconds; the top buckets reach the 2 s default budget.
_MOD_CALL_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric; `name` is what Prometheus stores (counters end in `_total`)."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    help: str
    labels: tuple[str, ...]
    source: str = "runtime"  # which component updates it
    buckets: tuple[float, ...] = ()


_M, _MM, _MMT = ("model",), ("model", "mod"), ("model", "mod", "tenant")
REQUESTS = MetricSpec(
    "quote_requests_total", "counter", "Requests finished, by how they ended.", (*_MMT, "finish_reason")
)
PROMPT_TOKENS = MetricSpec(
    "quote_prompt_tokens_total", "counter", "Prompt tokens prefilled (after adjust_prefill).", _MMT
)
COMPLETION_TOKENS = MetricSpec(
    "quote_completion_tokens_total", "counter", "Completion tokens returned to clients (erased ones excluded).", _MMT
)
TTFT = MetricSpec(
    "quote_time_to_first_token_seconds", "histogram", "Submit to first output token.", _MM, buckets=_LATENCY_BUCKETS
)
TPOT = MetricSpec(
    "quote_time_per_output_token_seconds",
    "histogram",
    "Decode time per output token after the first.",
    _MM,
    buckets=_TPOT_BUCKETS,
)
DURATION = MetricSpec(
    "quote_request_duration_seconds", "histogram", "Submit to finish, per request.", _MM, buckets=_LATENCY_BUCKETS
)
QUEUE_WAIT = MetricSpec(
    "quote_queue_wait_seconds", "histogram", "Submit to admission into the batch.", _M, buckets=_LATENCY_BUCKETS
)
IN_FLIGHT = MetricSpec("quote_requests_in_flight", "gauge", "Requests queued or decoding now.", _M)
INTERVENTIONS = MetricSpec(
    "quote_interventions_total", "counter", "Mod actions other than noop, by action.", (*_MM, "action")
)
MOD_CALL = MetricSpec(
    "quote_mod_call_duration_seconds",
    "histogram",
    "Latency of one mod call (noops included), by event.",
    (*_MM, "event"),
    buckets=_MOD_CALL_BUCKETS,
)
FORCED = MetricSpec("quote_forced_tokens_total", "counter", "Tokens appended by mods without sampling.", _MM)
ERASED = MetricSpec("quote_erased_tokens_total", "counter", "Tokens erased (backtracked) from outputs.", _MM)
MOD_ERRORS = MetricSpec(
    "quote_mod_errors_total",
    "counter",
    "Requests failed by their mod: exception, timeout, invalid_action, emit_error.",
    (*_MM, "kind"),
)
RATE_LIMITED = MetricSpec(
    "quote_rate_limit_refusals_total",
    "counter",
    "Requests refused by a tenant's rate limit (limit: requests, tokens, concurrency).",
    ("tenant", "limit"),
    source="gateway (defined here; the gateway increments it)",
)
PUBLISHES = MetricSpec(
    "quote_registry_publishes_total",
    "counter",
    "Mod versions published to the registry (outcome: published, rejected).",
    ("tenant", "outcome"),
    source="registry (defined here; the registry increments it)",
)
MOD_WORKER_RESTARTS = MetricSpec(
    "quote_mod_worker_restarts_total",
    "counter",
    "Isolated mod worker processes dropped and replaced (reason: timeout, died, idle_cpu, recycled, protocol).",
    ("reason",),
    source="mod worker pool (runtime/mod_pool.py, through its on_restart callback)",
)
METRICS: tuple[MetricSpec, ...] = (
    REQUESTS,
    PROMPT_TOKENS,
    COMPLETION_TOKENS,
    TTFT,
    TPOT,
    DURATION,
    QUEUE_WAIT,
    IN_FLIGHT,
    INTERVENTIONS,
    MOD_CALL,
    FORCED,
    ERASED,
    MOD_ERRORS,
    RATE_LIMITED,
    PUBLISHES,
    MOD_WORKER_RESTARTS,
)


def _build(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    if spec.kind == "counter":
        return Counter(spec.name.removesuffix("_total"), spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


class QuoteMetrics:
    """The collectors of `METRICS` on one registry; attributes are named after what they count."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        built = {spec.name: _build(spec, self.registry) for spec in METRICS}
        self.requests: Counter = built[REQUESTS.name]  # type: ignore[assignment]  # built from its spec, by name
        # (type: ignore below: each metric is built from its spec, looked up by name)
        self.prompt_tokens: Counter = built[PROMPT_TOKENS.name]  # type: ignore[assignment]
        # (type: ignore below: each metric is built from its spec, looked up by name)
        self.completion_tokens: Counter = built[COMPLETION_TOKENS.name]  # type: ignore[assignment]
        self.ttft: Histogram = built[TTFT.name]  # type: ignore[assignment]  # built from its spec, by name
        self.tpot: Histogram = built[TPOT.name]  # type: ignore[assignment]  # built from its spec, by name
        self.duration: Histogram = built[DURATION.name]  # type: ignore[assignment]  # built from its spec, by name
        self.queue_wait: Histogram = built[QUEUE_WAIT.name]  # type: ignore[assignment]  # built from its spec, by name
        self.in_flight: Gauge = built[IN_FLIGHT.name]  # type: ignore[assignment]  # built from its spec, by name
        # (type: ignore below: each metric is built from its spec, looked up by name)
        self.interventions: Counter = built[INTERVENTIONS.name]  # type: ignore[assignment]
        self.mod_call: Histogram = built[MOD_CALL.name]  # type: ignore[assignment]  # built from its spec, by name
        self.forced_tokens: Counter = built[FORCED.name]  # type: ignore[assignment]  # built from its spec, by name
        self.erased_tokens: Counter = built[ERASED.name]  # type: ignore[assignment]  # built from its spec, by name
        self.mod_errors: Counter = built[MOD_ERRORS.name]  # type: ignore[assignment]  # built from its spec, by name
        # (type: ignore below: each metric is built from its spec, looked up by name)
        self.rate_limit_refusals: Counter = built[RATE_LIMITED.name]  # type: ignore[assignment]
        # (type: ignore below: each metric is built from its spec, looked up by name)
        self.registry_publishes: Counter = built[PUBLISHES.name]  # type: ignore[assignment]
        # (type: ignore below: each metric is built from its spec, looked up by name)
        self.mod_worker_restarts: Counter = built[MOD_WORKER_RESTARTS.name]  # type: ignore[assignment]

    def track_load(self, model: str, load: Callable[[], float]) -> None:
        """Report `load()` (queued + decoding requests) as the in-flight gauge, read at scrape time."""
        self.in_flight.labels(model).set_function(load)


class MetricsObserver(RuntimeObserver):
    """Updates `QuoteMetrics` from the runtime; all counting happens once, from the final trace."""

    def __init__(self, metrics: QuoteMetrics, *, model: str) -> None:
        self.metrics = metrics
        self.model = model

    def on_first_token(self, handle: RequestHandle) -> None:
        timings = handle.timings
        if timings.first_token_ns is not None:
            seconds = (timings.first_token_ns - timings.submitted_ns) / 1e9
            self.metrics.ttft.labels(self.model, _mod(handle)).observe(seconds, exemplar(handle.request_id))

    def on_finished(self, handle: RequestHandle, trace: RequestTrace, error_kind: str | None) -> None:
        m, model, mod = self.metrics, self.model, _mod(handle)
        tenant = handle.request.tenant or NONE
        counts = token_counts(trace)
        m.requests.labels(model, mod, tenant, trace.finish_reason or "unknown").inc()
        m.prompt_tokens.labels(model, mod, tenant).inc(counts.prompt)
        m.completion_tokens.labels(model, mod, tenant).inc(counts.completion)
        link = exemplar(handle.request_id)  # `trace_id` exemplars: from a Grafana panel to this request's trace
        self._timings(handle, mod, counts.completion, link)
        if trace.mod is None:
            return
        m.forced_tokens.labels(model, mod).inc(counts.forced)
        m.erased_tokens.labels(model, mod).inc(counts.erased, link if counts.erased else None)
        if error_kind in MOD_ERROR_KINDS:
            m.mod_errors.labels(model, mod, error_kind).inc(exemplar=link)
        self._mod_calls(trace, mod, link)

    def _timings(self, handle: RequestHandle, mod: str, completion: int, link: dict[str, str] | None) -> None:
        t, m = handle.timings, self.metrics
        if t.finished_ns is not None:
            m.duration.labels(self.model, mod).observe((t.finished_ns - t.submitted_ns) / 1e9, link)
            if t.first_token_ns is not None and completion > 1:
                per_token = (t.finished_ns - t.first_token_ns) / 1e9 / (completion - 1)
                m.tpot.labels(self.model, mod).observe(per_token, link)
        if t.admitted_ns is not None:
            m.queue_wait.labels(self.model).observe((t.admitted_ns - t.submitted_ns) / 1e9, link)

    def _mod_calls(self, trace: RequestTrace, mod: str, link: dict[str, str] | None) -> None:
        by_event: dict[str, Histogram] = {}
        slowest: dict[str, ModCall] = {}
        for call in trace.mod_calls:
            child = by_event.get(call.event)
            if child is None:
                child = by_event[call.event] = self.metrics.mod_call.labels(self.model, mod, call.event)
                slowest[call.event] = call
            elif call.latency_ms > slowest[call.event].latency_ms:
                slowest[call.event] = call
        # Mod calls come per token: each is observed, and only each event's slowest call carries
        # the exemplar (one link per request and event is what a panel can show anyway).
        for call in trace.mod_calls:
            by_event[call.event].observe(call.latency_ms / 1000, link if slowest[call.event] is call else None)
        for item in interventions(trace):
            if item.action != "noop":  # a failed call is a mod error, counted above
                self.metrics.interventions.labels(self.model, mod, item.action).inc(exemplar=link)


def _mod(handle: RequestHandle) -> str:
    mod = handle.request.mod
    return mod.name if mod is not None else NONE
