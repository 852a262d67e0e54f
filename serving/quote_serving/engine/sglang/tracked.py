"""Quote's view of the requests it runs inside SGLang, keyed by SGLang's request id (`rid`).

Each `TrackedRequest` ties an SGLang `Req` (found by rid in every batch) to the runtime's entry for
the request (its `Generation`, handle and sampling settings) and remembers how many tokens SGLang
holds for it, the number `Generation.take_sync()` is relative to. The table is the only state the
plugin keeps between steps; SGLang's own objects stay the source of truth for KV and scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quote_mod_sdk.generation import Generation
from quote_serving.engine.sglang.rollback import SyncPlan

__all__ = ["RequestTable", "TrackedRequest"]


@dataclass
class TrackedRequest:
    """One Quote request inside SGLang."""

    rid: str
    live: Any  # the runtime's entry: .gen (Generation), .handle, .sampling, .generator
    held: int  # tokens SGLang holds for it (prompt + output), KV included up to the last
    trace_top_k: int  # alternatives recorded in the trace per sampled token (computed per batch)
    plan: SyncPlan | None = None  # this step's plan, applied once SGLang has processed the batch
    in_engine: bool = True  # False once SGLang has finished or aborted it
    abort_sent: bool = False

    @property
    def gen(self) -> Generation:
        gen: Generation = self.live.gen
        return gen


class RequestTable:
    """rid → TrackedRequest for every Quote request SGLang has not let go of yet."""

    def __init__(self) -> None:
        self._by_rid: dict[str, TrackedRequest] = {}

    def __len__(self) -> int:
        return len(self._by_rid)

    def __contains__(self, rid: object) -> bool:
        return rid in self._by_rid

    def track(self, rid: str, live: Any) -> list[int]:
        """Start tracking a prefilled generation; returns the prompt tokens to hand SGLang.

        The trace's top-k alternatives are computed for the whole batch at once (one device call,
        one copy) instead of by each `Generation` (two host syncs per request per step), so the
        generation's own top-k is turned off and the table remembers how many to record.
        """
        gen: Generation = live.gen
        rollback, prompt = gen.take_sync()
        if rollback or not prompt:
            raise ValueError(f"request {rid!r} is not freshly prefilled: its first sync must be the whole prompt")
        top_k = gen.params.top_logprobs
        gen.params.top_logprobs = 0
        self._by_rid[rid] = TrackedRequest(rid=rid, live=live, held=len(prompt), trace_top_k=top_k)
        return list(prompt)

    def get(self, rid: str) -> TrackedRequest | None:
        return self._by_rid.get(rid)

    def release(self, rid: str) -> TrackedRequest | None:
        """SGLang let go of the request (finished or aborted): stop tracking it."""
        tracked = self._by_rid.pop(rid, None)
        if tracked is not None:
            tracked.in_engine = False
        return tracked

    def values(self) -> list[TrackedRequest]:
        return list(self._by_rid.values())
