"""Spans of real requests (in-memory exporter): parentage from `traceparent`, phases in order,
one event per intervention carrying what the mod did, GenAI attributes."""

from __future__ import annotations

from typing import Any

import httpx
import openai
from opentelemetry.trace import SpanKind, StatusCode

from tests.observability.conftest import Local
from tests.observability.support import CALLER_SPAN_ID, CALLER_TRACE_ID, MODEL, TRACEPARENT, chat_body, sse_request_id


def spans_of(local: Local, request_id: str) -> dict[str, Any]:
    """The request span and its children, by name ("request", "prefill", "decode")."""
    spans = local.finished_spans()
    request = next(s for s in spans if s.attributes.get("gen_ai.response.id") == request_id)
    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == request.context.span_id}
    return {"request": request, **children}


def test_backtracking_request_spans_follow_the_caller_and_carry_every_intervention(
    local: Local, http_local: httpx.Client
) -> None:
    response = http_local.post(
        "/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter"), headers={"traceparent": TRACEPARENT}
    ).json()
    trace = http_local.get(f"/v1/traces/{response['id']}").json()
    spans = spans_of(local, response["id"])
    request, prefill, decode = spans["request"], spans["prefill"], spans["decode"]

    # The request span is the caller's child; prefill and decode are the request's.
    assert request.name == f"chat {MODEL}" and request.kind is SpanKind.SERVER
    assert request.context.trace_id == int(CALLER_TRACE_ID, 16)
    assert request.parent.span_id == int(CALLER_SPAN_ID, 16) and request.parent.is_remote
    assert {prefill.context.trace_id, decode.context.trace_id} == {request.context.trace_id}

    # Phases in order, inside the request.
    assert request.start_time <= prefill.start_time <= prefill.end_time <= decode.start_time
    assert decode.end_time == request.end_time

    # GenAI attributes agree with what the client got.
    attrs = request.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.usage.input_tokens"] == response["usage"]["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == response["usage"]["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == (response["choices"][0]["finish_reason"],)
    assert attrs["quote.mod.name"] == "rewriter" and attrs["quote.mod.version"] == "1"
    assert attrs["quote.tokens.erased"] == sum(t["erased"] for t in trace["tokens"]) > 0

    # One event per backtrack, in step order, timed inside decode, carrying what the mod did.
    backtracks = [c for c in trace["mod_calls"] if c["action"] == "backtrack"]
    events = decode.events
    assert len(events) == len(backtracks) == attrs["quote.interventions"] > 0
    assert [e.attributes["quote.step"] for e in events] == [c["step"] for c in backtracks]
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    for event, call in zip(events, backtracks):
        assert decode.start_time <= event.timestamp <= decode.end_time
        assert event.name == "quote.intervention"
        assert event.attributes["quote.mod.name"] == "rewriter"
        assert event.attributes["quote.mod.version"] == "1"
        assert event.attributes["quote.mod.event"] == "Added"
        assert event.attributes["quote.mod.action"] == "backtrack"
        assert event.attributes["quote.tokens.erased"] == 3
        assert event.attributes["quote.tokens.forced"] == call["detail"]["reinject"] == 1
        assert event.attributes["quote.mod.latency_ms"] == round(call["latency_ms"], 4)
    assert not prefill.events  # the mod did nothing at Prefilled


def test_streaming_requests_are_traced_too(local: Local, http_local: httpx.Client) -> None:
    request_id = sse_request_id(http_local, chat_body(f"{MODEL}/rewriter"), headers={"traceparent": TRACEPARENT})
    spans = spans_of(local, request_id)
    assert spans["request"].parent.span_id == int(CALLER_SPAN_ID, 16)
    assert spans["decode"].events and spans["request"].status.status_code is StatusCode.UNSET


def test_openai_client_traceparent_and_completions_operation(local: Local) -> None:
    client = openai.OpenAI(base_url=local.server.base_url + "/v1", api_key="dev", max_retries=0)
    reply = client.completions.create(
        model=MODEL, prompt="Once", max_tokens=5, temperature=0, extra_headers={"traceparent": TRACEPARENT}
    )
    request = spans_of(local, reply.id)["request"]
    assert request.name == f"text_completion {MODEL}"
    assert request.attributes["gen_ai.operation.name"] == "text_completion"
    assert "quote.mod.name" not in request.attributes
    assert request.context.trace_id == int(CALLER_TRACE_ID, 16)


def test_a_request_without_traceparent_starts_its_own_trace(local: Local, http_local: httpx.Client) -> None:
    response = http_local.post("/v1/chat/completions", json=chat_body(MODEL, max_tokens=3)).json()
    request = spans_of(local, response["id"])["request"]
    assert request.parent is None


def test_a_failing_mod_marks_its_span_as_an_error(local: Local, http_local: httpx.Client) -> None:
    before = {s.context.span_id for s in local.finished_spans()}
    response = http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/failer"))
    assert response.status_code == 422
    request = next(
        s
        for s in local.finished_spans()
        if s.context.span_id not in before and s.attributes.get("quote.mod.name") == "failer"
    )
    assert request.status.status_code is StatusCode.ERROR and "boom at step 4" in request.status.description
    assert request.attributes["error.type"] == "exception"
    assert request.attributes["gen_ai.response.finish_reasons"] == ("error",)
    decode = spans_of(local, request.attributes["gen_ai.response.id"])["decode"]
    (event,) = decode.events
    assert event.attributes["quote.step"] == 4 and "boom at step 4" in event.attributes["quote.mod.error"]
