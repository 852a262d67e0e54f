"""OpenTelemetry tracing: a tracer provider from the standard `OTEL_*` variables, and the observer
that hands finished requests to a background thread which turns them into spans.

    submit (HTTP request's task) ── on_submitted: current context → request.trace_context
    engine thread ── on_finished ──► queue ──► "quote-spans" thread: emit_request_spans
                                                 └► BatchSpanProcessor ─► OTLP/HTTP exporter

Tracing is off unless configured the standard way: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, or `OTEL_TRACES_EXPORTER` naming `otlp` or `console`;
`OTEL_SDK_DISABLED=true` wins over both. Endpoint, headers, timeout, compression, batch sizes,
span limits and `OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES` are read by the SDK itself. Tests
and embedders may pass their own `TracerProvider` instead.

The engine thread only enqueues; building spans (and exporting them) happens elsewhere, and a
full queue drops spans (counted, logged) rather than slow generation down.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import propagate
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter

from quote_serving.observability.spans import FinishedRequest, emit_request_spans
from quote_serving.runtime.observers import RuntimeObserver

if TYPE_CHECKING:
    from quote_mod_sdk.generation import RequestTrace
    from quote_serving.runtime.requests import RequestHandle

__all__ = ["DEFAULT_SERVICE_NAME", "SpanObserver", "TracingConfigError", "tracer_provider_from_env"]

logger = logging.getLogger(__name__)
DEFAULT_SERVICE_NAME = "quote-serving"
_SUPPORTED_PROTOCOLS = ("http/protobuf", "")


class TracingConfigError(ValueError):
    """The OTEL_* variables ask for something this build cannot do (e.g. the gRPC exporter)."""


def tracer_provider_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A provider exporting as the `OTEL_*` variables say, or None when tracing is not configured."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = _exporter_names(env)
    if not exporters:
        return None
    provider = TracerProvider(resource=_resource())
    for name in exporters:
        if name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(env)))
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            raise TracingConfigError(f"OTEL_TRACES_EXPORTER={name!r} is not supported; use otlp, console or none")
    logger.info("tracing on: exporting spans via %s", ", ".join(exporters))
    return provider


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    named = env.get("OTEL_TRACES_EXPORTER")
    if named is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    return [n.strip().lower() for n in named.split(",") if n.strip() and n.strip().lower() != "none"]


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", ""))
    if protocol.strip().lower() not in _SUPPORTED_PROTOCOLS:
        raise TracingConfigError(
            f"OTLP protocol {protocol!r} is not installed; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf "
            "(a collector's port 4318)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from OTEL_EXPORTER_OTLP_*


def _resource() -> Resource:
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


class SpanObserver(RuntimeObserver):
    """Captures each request's trace context on submit and emits its spans off the engine thread."""

    def __init__(self, provider: TracerProvider, *, model: str, max_queue: int = 10_000) -> None:
        self.provider = provider
        self.model = model
        self.dropped = 0
        self._tracer = provider.get_tracer("quote_serving")
        self._queue: queue.Queue[FinishedRequest | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="quote-spans", daemon=True)
        self._thread.start()

    def on_submitted(self, handle: RequestHandle) -> None:
        if handle.request.trace_context is None:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)  # the caller's span, put in context by TraceContextMiddleware
            handle.request.trace_context = carrier or None

    def on_finished(self, handle: RequestHandle, trace: RequestTrace, error_kind: str | None) -> None:
        done = FinishedRequest(handle.request, trace, handle.timings, self.model, error_kind)
        try:
            self._queue.put_nowait(done)
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                logger.warning("span queue full: %d request spans dropped so far", self.dropped)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued request is emitted and exported; False if that took too long."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        return not self._queue.unfinished_tasks and self.provider.force_flush(remaining_ms)

    def close(self, timeout_s: float = 10.0) -> None:
        """Emit what is queued, stop the thread and flush (the provider's owner shuts it down)."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        self.provider.force_flush(int(timeout_s * 1000))

    def _run(self) -> None:
        while True:
            done = self._queue.get()
            try:
                if done is None:
                    return
                emit_request_spans(self._tracer, done)
            except Exception:
                logger.exception("could not build the spans of request %s", getattr(done, "request", None))
            finally:
                self._queue.task_done()
