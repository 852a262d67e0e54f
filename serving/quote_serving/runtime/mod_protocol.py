"""Frames between the engine and a mod worker process (`runtime/mod_worker.py`).

A frame is `>II` (header length, blob length), a UTF-8 JSON header, then raw bytes (a logits row
as float32, or nothing). Both sides parse the other's frames as untrusted data: sizes are capped,
the header must be a JSON object, and nothing is ever unpickled.

A call's header is written by orjson (the engine writes one per request per step; `json` takes
~20x as long), every other header by `json`; headers are read by orjson, and by `json` when
orjson refuses one (NaN, a lone surrogate, an int past 64 bits), so both read the same values.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import orjson

__all__ = [
    "MAX_BLOB",
    "MAX_HEADER",
    "NOOP_ANSWER",
    "NOOP_HEADER",
    "PREFIX",
    "ProtocolError",
    "decode_header",
    "encode_frame",
    "split_prefix",
    "take_frames",
]

PREFIX = struct.Struct(">II")
MAX_HEADER = 16 << 20  # a bundle's source rides in a header
MAX_BLOB = 64 << 20  # a float32 row of 16M logits


class ProtocolError(ValueError):
    """A frame that breaks the protocol (too large, not a JSON object)."""


_ENCODER = json.JSONEncoder(separators=(",", ":"))
NOOP_HEADER = _ENCODER.encode({"ok": True, "action": "noop"}).encode()  # nearly every answer: not parsed
NOOP_ANSWER: dict[str, Any] = {"ok": True, "action": "noop"}  # what it decodes to: shared, never mutated


def encode_frame(header: dict[str, Any], blob: bytes = b"", *, plain: bool = False) -> bytes:
    """`plain`: the header holds only strings, ints, bools and lists or objects of them (an
    event's header, as the engine builds it), which orjson writes as the same JSON value; any
    other (client JSON may hold NaN, which orjson would write as null) goes through `json`."""
    data: bytes | None = None
    if plain:
        try:
            data = orjson.dumps(header)
        except TypeError:  # a lone surrogate, an int past 64 bits: json writes those
            data = None
    if data is None:
        data = _ENCODER.encode(header).encode()
    return PREFIX.pack(len(data), len(blob)) + data + blob


def split_prefix(prefix: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """(header length, blob length) of the 8-byte frame prefix at `offset`, refused when over the caps."""
    header_len, blob_len = PREFIX.unpack_from(prefix, offset)
    if header_len > MAX_HEADER or blob_len > MAX_BLOB:
        raise ProtocolError(f"a frame of {header_len}+{blob_len} bytes is over the limit")
    return header_len, blob_len


def take_frames(inbox: bytearray) -> list[tuple[dict[str, Any], bytes]]:
    """Every whole frame at the start of `inbox`, removed from it; a partial frame stays for
    the next read. `ProtocolError` for a frame over the caps or a header that is not a JSON
    object (the frames before it are lost with the worker that sent them)."""
    frames: list[tuple[dict[str, Any], bytes]] = []
    at, size = 0, len(inbox)
    while size - at >= PREFIX.size:
        header_len, blob_len = split_prefix(inbox, at)
        start = at + PREFIX.size
        end = start + header_len
        if size < end + blob_len:
            break
        if header_len == len(NOOP_HEADER) and inbox.startswith(NOOP_HEADER, start):
            header = NOOP_ANSWER  # nearly every answer: neither copied nor parsed
        else:
            header = decode_header(bytes(inbox[start:end]))
        frames.append((header, bytes(inbox[end : end + blob_len]) if blob_len else b""))
        at = end + blob_len
    del inbox[:at]
    return frames


def decode_header(data: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(data)
    except orjson.JSONDecodeError:  # strict JSON only, 1024 levels deep at most: json decides
        try:
            header = json.loads(data.decode())
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # a hostile worker nests past the stack
            raise ProtocolError(f"a frame header that is not JSON: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("a frame header that is not a JSON object")
    return header
