"""What `GET /metrics` answers: the text format by default, OpenMetrics when the scraper asks for it.

    Accept: application/openmetrics-text ──► OpenMetrics 1.0: histograms and counters with their
                                             `trace_id` exemplars (Prometheus with exemplar storage)
    anything else ─────────────────────────► the classic text format (no exemplars: it cannot carry them)

Prometheus asks for OpenMetrics first by default, so exemplars reach it with no extra scrape
configuration; `curl` and older scrapers keep getting the plain format. The `trace_id` is the
request id the trace store and the timeline page know (`/timeline?trace=<trace_id>`), so a
Grafana exemplar leads straight to that request's tokens.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["EXEMPLAR_LABEL", "exemplar", "render_metrics"]

EXEMPLAR_LABEL = "trace_id"
# OpenMetrics caps an exemplar's label set at 128 characters (names and values together);
# prometheus_client raises beyond that, so a longer id gets no exemplar rather than an error.
_MAX_EXEMPLAR_VALUE = 128 - len(EXEMPLAR_LABEL)


def exemplar(request_id: str) -> dict[str, str] | None:
    """The exemplar labels pointing at one request's trace (None when the id cannot be one)."""
    if not request_id or len(request_id) > _MAX_EXEMPLAR_VALUE:
        return None
    return {EXEMPLAR_LABEL: request_id}


def render_metrics(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """(body, content type) of `registry` in the format `accept` prefers."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
