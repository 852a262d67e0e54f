"""A real `quote serve`, configured only by OTEL_* variables, exports its spans over OTLP/HTTP
to a receiver in this test, which decodes the protobuf ExportTraceServiceRequest."""

from __future__ import annotations

import httpx

from tests.observability.conftest import Served
from tests.observability.support import (
    CALLER_SPAN_ID,
    CALLER_TRACE_ID,
    MODEL,
    TRACEPARENT,
    attribute,
    chat_body,
    sse_request_id,
    wait_for,
)


def exported(served: Served, request_id: str) -> dict[str, tuple[object, object]]:
    """The request's exported spans by role, once all three (or two) have arrived."""

    def collect() -> dict[str, tuple[object, object]] | None:
        spans = served.receiver.spans()
        root = next(((r, s) for r, s in spans if attribute(s, "gen_ai.response.id") == request_id), None)
        if root is None:
            return None
        children = {s.name: (r, s) for r, s in spans if s.parent_span_id == root[1].span_id}
        return {"request": root, **children} if {"prefill", "decode"} <= set(children) else None

    return wait_for(collect, timeout=30)


def test_spans_reach_an_otlp_receiver_with_caller_parentage_and_interventions(
    served: Served, http_served: httpx.Client
) -> None:
    response = http_served.post(
        "/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter"), headers={"traceparent": TRACEPARENT}
    ).json()
    trace = http_served.get(f"/v1/traces/{response['id']}").json()
    spans = exported(served, response["id"])
    resource, request = spans["request"]
    _, decode = spans["decode"]

    assert attribute(resource, "service.name") == "quote-e2e"  # OTEL_SERVICE_NAME
    assert served.receiver.content_types[0] == "application/x-protobuf"
    assert request.trace_id.hex() == CALLER_TRACE_ID and request.parent_span_id.hex() == CALLER_SPAN_ID
    assert request.name == f"chat {MODEL}" and request.kind == request.SPAN_KIND_SERVER
    assert attribute(request, "gen_ai.usage.output_tokens") == response["usage"]["completion_tokens"]
    assert attribute(request, "gen_ai.response.finish_reasons") == [response["choices"][0]["finish_reason"]]
    assert attribute(request, "quote.mod.name") == "rewriter"

    backtracks = [c for c in trace["mod_calls"] if c["action"] == "backtrack"]
    assert [attribute(e, "quote.step") for e in decode.events] == [c["step"] for c in backtracks]
    assert {attribute(e, "quote.mod.action") for e in decode.events} == {"backtrack"}
    assert all(attribute(e, "quote.tokens.erased") == 3 for e in decode.events)
    assert request.start_time_unix_nano <= decode.start_time_unix_nano <= decode.end_time_unix_nano
    assert decode.end_time_unix_nano == request.end_time_unix_nano


def test_streamed_requests_are_exported_too(served: Served, http_served: httpx.Client) -> None:
    request_id = sse_request_id(http_served, chat_body(f"{MODEL}/rewriter"), headers={"traceparent": TRACEPARENT})
    spans = exported(served, request_id)
    _, request = spans["request"]
    assert request.parent_span_id.hex() == CALLER_SPAN_ID
