"""Reading the token usage out of a response as it passes through, without holding it up.

    JSON response ─ every chunk sent on at once, a copy kept ─► at the end: body["usage"], body["id"]
    SSE stream    ─ split into events ("…\\n\\n"), each sent on as soon as it is whole
                  ─ an event with a "usage" object ─► recorded; dropped when the gateway asked for it
                    (stream_options.include_usage) and the client did not

Streamed responses carry usage only when asked, so the edge asks for it on every stream and the
meter removes the extra chunk again: the client sees exactly what it requested, and every
request is counted. Only events that contain `"usage":` are parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ResponseMeter", "Usage"]

_MAX_JSON_COPY = 8 << 20  # larger non-streamed bodies are passed on but not metered
_USAGE = b'"usage":'


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ResponseMeter:
    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self.strip_usage_chunk = strip_usage_chunk
        self.status: int | None = None
        self.streaming = False
        self.usage: Usage | None = None
        self.response_id: str | None = None
        self._buffer = bytearray()

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        for name, value in headers:
            if name.lower() == b"content-type":
                self.streaming = value.startswith(b"text/event-stream")

    def feed(self, chunk: bytes, more: bool) -> bytes:
        """The part of `chunk` to send on now."""
        if self.status != 200:
            return chunk
        if not self.streaming:
            if len(self._buffer) + len(chunk) <= _MAX_JSON_COPY:
                self._buffer += chunk
            if not more:
                self._read_json(bytes(self._buffer))
            return chunk
        return self._events(chunk, more)

    def _read_json(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        if isinstance(data, dict):
            self._note(data)

    def _events(self, chunk: bytes, more: bool) -> bytes:
        buffer = self._buffer
        if not buffer and chunk.endswith(b"\n\n") and _USAGE not in chunk:
            return chunk  # the common case: whole events without usage, sent on untouched
        buffer += chunk
        end = buffer.rfind(b"\n\n")
        if end < 0 and more:
            return b""
        cut = end + 2 if end >= 0 and more else len(buffer)  # the end of the body flushes a partial event too
        whole, rest = bytes(buffer[:cut]), bytes(buffer[cut:])
        buffer.clear()
        buffer += rest
        return whole if _USAGE not in whole else self._filter(whole)

    def _filter(self, events: bytes) -> bytes:
        kept = []
        for event in events.split(b"\n\n"):
            if _USAGE in event and self._is_usage_only(event):
                continue
            kept.append(event)
        return b"\n\n".join(kept)

    def _is_usage_only(self, event: bytes) -> bool:
        """Note the usage of `event`; True when it is the usage-only chunk the client did not ask for."""
        payload = event.strip()
        if not payload.startswith(b"data:"):
            return False
        try:
            data = json.loads(payload[5:])
        except ValueError:
            return False
        if not isinstance(data, dict):
            return False
        self._note(data)
        return self.strip_usage_chunk and data.get("choices") == [] and isinstance(data.get("usage"), dict)

    def _note(self, data: dict[str, Any]) -> None:
        usage = data.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                self.usage = Usage(prompt, completion)
        if self.response_id is None and isinstance(data.get("id"), str):
            self.response_id = data["id"]
