"""Framing of a worker's answers (`mod_protocol.take_frames`): the bytes come from a process that
runs untrusted code, which can write anything to its end of the pipe, in any pieces."""

from __future__ import annotations

import json

import pytest

from quote_serving.runtime.mod_protocol import (
    MAX_HEADER,
    NOOP_ANSWER,
    NOOP_HEADER,
    PREFIX,
    ProtocolError,
    encode_frame,
    take_frames,
)


def _frame(header: bytes, blob: bytes = b"") -> bytes:
    return PREFIX.pack(len(header), len(blob)) + header + blob


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    stream = (
        encode_frame({"ok": True, "action": "noop"})
        + encode_frame({"ok": True, "action": "adjust_logits", "logits": "pipe"}, b"\x00\x00\x80?" * 3)
        + encode_frame({"ok": False, "error": "boom"})
    )
    for cut in range(len(stream) + 1):  # every split of the stream into two reads
        inbox = bytearray(stream[:cut])
        frames = take_frames(inbox)
        inbox += stream[cut:]
        frames += take_frames(inbox)
        assert inbox == b""
        assert [h for h, _ in frames] == [
            {"ok": True, "action": "noop"},
            {"ok": True, "action": "adjust_logits", "logits": "pipe"},
            {"ok": False, "error": "boom"},
        ]
        assert [b for _, b in frames] == [b"", b"\x00\x00\x80?" * 3, b""]


def test_a_noop_answer_is_the_shared_constant_only_when_its_bytes_are_exactly_noop() -> None:
    longer = NOOP_HEADER[:-1] + b',"logits":"slot"}'  # starts like noop, says more
    padded = NOOP_HEADER + b" "  # the same JSON object, other bytes
    inbox = bytearray(_frame(NOOP_HEADER) + _frame(longer) + _frame(padded) + _frame(NOOP_HEADER, b"tail"))
    (a, _), (b, _), (c, _), (d, blob) = take_frames(inbox)
    assert a is NOOP_ANSWER
    assert b == {**NOOP_ANSWER, "logits": "slot"} and b is not NOOP_ANSWER
    assert c == NOOP_ANSWER and c is not NOOP_ANSWER
    assert d is NOOP_ANSWER and blob == b"tail"  # the blob is still taken off the stream
    assert json.loads(NOOP_HEADER) == NOOP_ANSWER  # nobody changed the shared answer


@pytest.mark.parametrize(
    "stream",
    [
        PREFIX.pack(MAX_HEADER + 1, 0),  # a header over the cap: refused before anything is buffered
        _frame(b"not json"),
        _frame(b"[1, 2]"),  # JSON, not an object
        _frame(NOOP_HEADER[:5]),  # a prefix of the noop bytes
        _frame(b"\xff\xfe"),  # not UTF-8
        _frame(b"[" * 100_000 + b"]" * 100_000),  # nested past the parser's recursion limit
        _frame(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ],
)
def test_a_broken_frame_is_a_protocol_error(stream: bytes) -> None:
    inbox = bytearray(encode_frame({"ok": True, "action": "noop"}) + stream)
    with pytest.raises(ProtocolError):
        take_frames(inbox)


@pytest.mark.parametrize(
    "header",
    [
        {"op": "call", "event": {"kind": "Prefilled", "prefilled_text": "héllo ✓", "tokens": [1, 2]}},
        {"op": "call", "event": {"kind": "Sampled", "request_id": "lone \ud800 surrogate"}},  # orjson refuses it
        {"op": "call", "event": {"kind": "Sampled", "sampled_token": 1 << 70}},  # past orjson's 64 bits
    ],
)
def test_a_plain_header_reads_back_the_same_whichever_encoder_wrote_it(header: dict[str, object]) -> None:
    for plain in (True, False):
        ((read, blob),) = take_frames(bytearray(encode_frame(header, b"row", plain=plain)))
        assert read == header and blob == b"row"
