"""Observability: OpenTelemetry spans of every request and intervention, Prometheus metrics,
Grafana dashboards generated from code, and trace share links.

The runtime reports to observers (`quote_serving.runtime.observers`); this package provides
them and never reaches into the engine loop. `Observability.build` assembles one app's parts.
"""

from quote_serving.observability.components import Observability
from quote_serving.observability.interventions import Intervention, interventions, token_counts
from quote_serving.observability.metrics import METRICS, MetricsObserver, MetricSpec, QuoteMetrics
from quote_serving.observability.propagation import TraceContextMiddleware
from quote_serving.observability.share import ShareGrant, ShareLinks
from quote_serving.observability.spans import INTERVENTION_EVENT, FinishedRequest, emit_request_spans
from quote_serving.observability.tracing import SpanObserver, TracingConfigError, tracer_provider_from_env

__all__ = [
    "INTERVENTION_EVENT",
    "METRICS",
    "FinishedRequest",
    "Intervention",
    "MetricSpec",
    "MetricsObserver",
    "Observability",
    "QuoteMetrics",
    "ShareGrant",
    "ShareLinks",
    "SpanObserver",
    "TraceContextMiddleware",
    "TracingConfigError",
    "emit_request_spans",
    "interventions",
    "token_counts",
    "tracer_provider_from_env",
]
