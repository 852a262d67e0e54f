"""Usage read from responses in flight; the usage chunk the gateway asked for is removed again."""

from __future__ import annotations

import json

from quote_serving.gateway.metering import ResponseMeter, Usage

SSE = [(b"content-type", b"text/event-stream")]
USAGE_CHUNK = {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}


def event(data: object) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode()) + b"\n\n"


def relay(meter: ResponseMeter, chunks: list[bytes]) -> bytes:
    out = b""
    for i, chunk in enumerate(chunks):
        out += meter.feed(chunk, more=i < len(chunks) - 1)
    return out


def test_json_bodies_are_metered_and_passed_unchanged() -> None:
    meter = ResponseMeter(strip_usage_chunk=False)
    meter.start(200, [(b"content-type", b"application/json")])
    body = json.dumps({"id": "cmpl-9", "usage": {"prompt_tokens": 4, "completion_tokens": 2}}).encode()
    assert relay(meter, [body[:10], body[10:]]) == body
    assert meter.usage == Usage(4, 2) and meter.response_id == "cmpl-9"


def test_the_usage_chunk_is_dropped_when_only_the_gateway_wanted_it() -> None:
    text = event({"choices": [{"delta": {"content": "hi"}}]})
    stream = text + event(USAGE_CHUNK) + event(b"[DONE]")
    for size in (1, 7, len(stream)):  # however the bytes are cut, events come out whole
        meter = ResponseMeter(strip_usage_chunk=True)
        meter.start(200, SSE)
        assert relay(meter, [stream[i : i + size] for i in range(0, len(stream), size)]) == text + event(b"[DONE]")
        assert meter.usage == Usage(7, 3) and meter.response_id == "chatcmpl-1"


def test_the_usage_chunk_stays_when_the_client_asked_for_it() -> None:
    stream = event(USAGE_CHUNK) + event(b"[DONE]")
    meter = ResponseMeter(strip_usage_chunk=False)
    meter.start(200, SSE)
    assert relay(meter, [stream]) == stream and meter.usage == Usage(7, 3)


def test_text_mentioning_usage_is_not_mistaken_for_it() -> None:
    chunk = event({"choices": [{"delta": {"content": 'say "usage": 5'}}]})
    meter = ResponseMeter(strip_usage_chunk=True)
    meter.start(200, SSE)
    assert relay(meter, [chunk, b""]) == chunk and meter.usage is None


def test_errors_pass_through_unmetered() -> None:
    meter = ResponseMeter(strip_usage_chunk=True)
    meter.start(404, [(b"content-type", b"application/json")])
    assert meter.feed(b'{"error": {}}', more=False) == b'{"error": {}}' and meter.usage is None


def test_a_truncated_last_event_is_flushed() -> None:
    meter = ResponseMeter(strip_usage_chunk=True)
    meter.start(200, SSE)
    assert relay(meter, [event({"a": 1}) + b"data: {partial"]) == event({"a": 1}) + b"data: {partial"
