"""Recent request traces, kept in memory for `GET /v1/traces/{id}` and the timeline page.

Traces are the SDK's `RequestTrace` (recorded by the shared request loop); this module only
bounds how many are kept and turns one into JSON with token texts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quote_mod_sdk.generation import RequestTrace

__all__ = ["StoredTrace", "TraceStore", "trace_to_json"]


@dataclass
class StoredTrace:
    trace: RequestTrace
    model: str
    tenant: str | None
    created: float


class TraceStore:
    """A bounded, thread-safe map of request id → trace (oldest evicted first)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, StoredTrace] = OrderedDict()
        self._lock = threading.Lock()
        # Also hands each finished trace to a durable store (observability.trace_shipper); must not block.
        self.sink: Callable[[StoredTrace], None] | None = None

    def put(self, stored: StoredTrace) -> None:
        with self._lock:
            self._items[stored.trace.request_id] = stored
            self._items.move_to_end(stored.trace.request_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        if self.sink is not None:
            self.sink(stored)

    def get(self, request_id: str) -> StoredTrace | None:
        with self._lock:
            return self._items.get(request_id)

    def recent(self, tenant: str | None = None, limit: int = 50) -> list[StoredTrace]:
        with self._lock:
            items = [s for s in reversed(self._items.values()) if tenant is None or s.tenant == tenant]
        return items[:limit]


def trace_to_json(stored: StoredTrace, tokenizer: Any) -> dict[str, Any]:
    trace = stored.trace

    def text(token: int) -> str:
        return str(tokenizer.decode([token]))

    return {
        "id": trace.request_id,
        "object": "trace",
        "created": int(stored.created),
        "model": stored.model,
        "mod": trace.mod,
        "finish_reason": trace.finish_reason,
        "error": trace.error,
        "prompt": {"tokens": trace.prompt_tokens, "text": tokenizer.decode(trace.prompt_tokens)},
        "tokens": [
            {
                "step": r.step,
                "token": r.token,
                "text": text(r.token),
                "kind": "forced" if r.forced else "sampled",
                "erased": r.erased,
                "stop": r.stop,
                "logprob": r.logprob,
                "top_logprobs": [{"token": t, "text": text(t), "logprob": lp} for t, lp in r.top_logprobs],
            }
            for r in trace.tokens
        ],
        "mod_calls": [
            {
                "step": c.step,
                "event": c.event,
                "action": c.action,
                "latency_ms": round(c.latency_ms, 4),
                "detail": c.detail,
                "error": c.error,
            }
            for c in trace.mod_calls
        ],
    }
