"""Frames between the engine and a mod worker process (`runtime/mod_worker.py`).

A frame is `>II` (header length, blob length), a UTF-8 JSON header, then raw bytes (a logits row
as float32, or nothing). Both sides parse the other's frames as untrusted data: sizes are capped,
the header must be a JSON object, and nothing is ever unpickled.
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = ["MAX_BLOB", "MAX_HEADER", "NOOP_HEADER", "ProtocolError", "decode_header", "encode_frame", "split_prefix"]

PREFIX = struct.Struct(">II")
MAX_HEADER = 16 << 20  # a bundle's source rides in a header
MAX_BLOB = 64 << 20  # a float32 row of 16M logits


class ProtocolError(ValueError):
    """A frame that breaks the protocol (too large, not a JSON object)."""


_ENCODER = json.JSONEncoder(separators=(",", ":"))
NOOP_HEADER = _ENCODER.encode({"ok": True, "action": "noop"}).encode()  # nearly every answer: not parsed


def encode_frame(header: dict[str, Any], blob: bytes = b"") -> bytes:
    data = _ENCODER.encode(header).encode()
    return PREFIX.pack(len(data), len(blob)) + data + blob


def split_prefix(prefix: bytes) -> tuple[int, int]:
    """(header length, blob length) of a frame's 8-byte prefix, refused when over the caps."""
    header_len, blob_len = PREFIX.unpack(prefix)
    if header_len > MAX_HEADER or blob_len > MAX_BLOB:
        raise ProtocolError(f"a frame of {header_len}+{blob_len} bytes is over the limit")
    return header_len, blob_len


def decode_header(data: bytes) -> dict[str, Any]:
    if data == NOOP_HEADER:
        return {"ok": True, "action": "noop"}
    try:
        header = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"a frame header that is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("a frame header that is not a JSON object")
    return header
