"""Turning one finished request into OpenTelemetry spans, with the times it really had.

    request span  "chat quote-tiny"  (SERVER; child of the caller's span via `traceparent`)
    ├── prefill   admitted → the prompt's forward pass returned   events: step-0 interventions
    └── decode    first logits → finished                          events: one per intervention

Spans are built after the request ended, from `RequestTimings` stamped by the runtime, so the
per-token loop never touches the tracing SDK. Attributes follow the OpenTelemetry GenAI semantic
conventions where one exists (`gen_ai.*`) and use `quote.*` for what is ours (mods,
interventions, forced and erased tokens). An intervention event's timestamp is the end of the
decode step it happened in (steps are milliseconds apart).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from quote_serving.observability.interventions import Intervention, interventions, token_counts

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from quote_mod_sdk.generation import RequestTrace
    from quote_serving.runtime.observers import RequestTimings
    from quote_serving.runtime.requests import GenerationRequest

__all__ = ["INTERVENTION_EVENT", "FinishedRequest", "emit_request_spans"]

INTERVENTION_EVENT = "quote.intervention"
PROVIDER = "quote"


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    """What a finished request leaves for tracing (everything is final, nothing is shared)."""

    request: GenerationRequest
    trace: RequestTrace
    timings: RequestTimings
    model: str
    error_kind: str | None = None


def emit_request_spans(tracer: Tracer, done: FinishedRequest) -> None:
    """Record the request span and its prefill/decode children (ended with their real times)."""
    t = done.timings
    end = t.finished_ns or time.time_ns()
    operation = "chat" if done.request.messages is not None else "text_completion"
    parent = propagate.extract(done.request.trace_context) if done.request.trace_context else None
    span = tracer.start_span(
        f"{operation} {done.model}",
        context=parent,
        kind=SpanKind.SERVER,
        start_time=t.submitted_ns,
        attributes=_request_attributes(done, operation),
    )
    inside = trace.set_span_in_context(span)
    steps = interventions(done.trace)
    prefill_end = t.prefilled_ns or end
    prefill = tracer.start_span("prefill", context=inside, start_time=t.admitted_ns or t.submitted_ns)
    prefill.set_attribute("gen_ai.usage.input_tokens", len(done.trace.prompt_tokens))
    _add_events(prefill, done, [i for i in steps if i.step == 0])
    prefill.end(prefill_end)
    if t.prefilled_ns is not None:
        decode = tracer.start_span("decode", context=inside, start_time=t.prefilled_ns)
        decode.set_attribute("quote.steps", len(t.step_end_ns))
        _add_events(decode, done, [i for i in steps if i.step > 0])
        decode.end(end)
    if done.trace.error is not None:
        span.set_status(Status(StatusCode.ERROR, done.trace.error))
    span.end(end)


def _request_attributes(done: FinishedRequest, operation: str) -> dict[str, Any]:
    req, trace_ = done.request, done.trace
    counts = token_counts(trace_)
    steps = interventions(trace_)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": done.model,
        "gen_ai.response.model": done.model,
        "gen_ai.response.id": req.request_id,
        "gen_ai.request.max_tokens": req.params.max_tokens,
        "gen_ai.request.temperature": req.sampling.temperature,
        "gen_ai.request.top_p": req.sampling.top_p,
        "gen_ai.usage.input_tokens": counts.prompt,
        "gen_ai.usage.output_tokens": counts.completion,
        "gen_ai.response.finish_reasons": (trace_.finish_reason or "unknown",),
        "quote.interventions": sum(i.action != "noop" for i in steps),
        "quote.tokens.forced": counts.forced,
        "quote.tokens.erased": counts.erased,
    }
    if req.sampling.top_k:
        attributes["gen_ai.request.top_k"] = req.sampling.top_k
    if req.sampling.seed is not None:
        attributes["gen_ai.request.seed"] = req.sampling.seed
    attributes.update(_mod_attributes(done))
    if req.tenant is not None:
        attributes["quote.tenant.id"] = req.tenant
    if done.error_kind is not None:
        attributes["error.type"] = done.error_kind
    return attributes


def _mod_attributes(done: FinishedRequest) -> dict[str, str]:
    if done.trace.mod is None:
        return {}
    attributes = {"quote.mod.name": done.trace.mod}
    if done.request.mod_version is not None:
        attributes["quote.mod.version"] = done.request.mod_version
    return attributes


def _add_events(span: Span, done: FinishedRequest, items: list[Intervention]) -> None:
    mod = _mod_attributes(done)
    for item in items:
        attributes: dict[str, Any] = {
            **mod,
            "quote.mod.event": item.event,
            "quote.mod.action": item.action,
            "quote.step": item.step,
            "quote.tokens.forced": item.forced,
            "quote.tokens.erased": item.erased,
            "quote.mod.latency_ms": round(item.latency_ms, 4),
        }
        if item.tools:
            attributes["quote.tool_calls"] = item.tools
        if item.error is not None:
            attributes["quote.mod.error"] = item.error
        span.add_event(INTERVENTION_EVENT, attributes, timestamp=done.timings.step_time(item.step))
