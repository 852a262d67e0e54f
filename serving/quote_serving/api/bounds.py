"""Input bounds every edge applies (the replica's API and the gateway): one set of numbers.

Names, versions and refs have their grammar in `quote_mod_sdk.names`; the request body's numbers and
sizes are bounded here, so nothing a client sends can reach an engine as an out-of-range integer
(a 2^64 seed once ended the engine thread) or exhaust the parser (deeply nested JSON).
"""

from __future__ import annotations

import re

from quote_mod_sdk.names import MAX_INT64

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_MAX_TOKENS",
    "MAX_MESSAGES",
    "MAX_SEED",
    "MAX_STOP_LENGTH",
    "MAX_STRING",
    "MAX_TOOLS",
    "json_depth_exceeds",
]

MAX_SEED = MAX_INT64  # a signed 64-bit integer: what torch and numpy generators take
MAX_MAX_TOKENS = 1 << 20  # any real context is shorter; the engine also caps at its own limit
MAX_MESSAGES = 4096
MAX_TOOLS = 256
MAX_STRING = 1 << 20  # a single string field (the body limit bounds the whole)
MAX_STOP_LENGTH = 256
MAX_JSON_DEPTH = 64  # OpenAI bodies nest about 6 deep (tools' JSON schemas a little more)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Does this JSON text nest deeper than `limit`? Scans bytes, never recurses (run before parsing)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
