"""One step of Quote requests at SGLang's sampling point: ForwardPass → edits → sampling → commit.

SGLang's model runner hands over the batch's next-token logits `[batch, vocab]` (on the GPU) and
expects one token per row back. `StepRunner.run` does, for the rows that are Quote requests:

    1. the trace's top-k of the raw rows, for the whole batch at once (kept on the device)
    2. `Generation.forward_pass(row)` per request: its mod sees a view of its own row
    3. the mods' logits edits, applied to the batch tensor in one go (`LogitsEditBatch`)
    4. one batched `sample()` (Quote's sampler: the embedded engine's exact semantics, seeds
       included) over the rows that sample; one host copy of tokens, logprobs and top-k
    5. `Generation.sampled(token)` per request: Sampled / Added events, stop checks
    6. `take_sync()` → `plan_sync()`: what SGLang must do with the request (append, trim,
       requeue, finish) and the token it appends now

so there is one Python call per step, not per request, and no host sync per request. Rows that
are not Quote requests, or are mid-way through a chunked prefill, get `None` and emit 0.

With isolated mods (`calls` set: each mod call is a round trip to a worker process) steps 2 and 5
send every request's call at once on that pool, so a step costs the slowest call, not their sum.
SGLang forms the batch and expects a token for every row, so here a late mod still holds its step
(up to its budget); the embedded engine lets it sit out instead (`runtime/dispatch.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from quote_mod_sdk.generation import SamplePlan
from quote_serving.engine.sampling import SamplingParams, sample
from quote_serving.engine.sglang.logits_edits import LogitsEditBatch, shares_row
from quote_serving.engine.sglang.rollback import SyncPlan, plan_sync
from quote_serving.engine.sglang.tracked import TrackedRequest

__all__ = ["StepOptions", "StepOutput", "StepRunner"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StepOptions:
    """How plans are chosen for this batch (see `plan_sync`)."""

    decode: bool  # a decode batch (else a prefill/extend batch)
    allow_trim: bool = True
    page_size: int = 1


@dataclass(slots=True)
class StepOutput:
    """One token per batch row (what SGLang appends) and each Quote row's plan."""

    emit: list[int]
    plans: list[SyncPlan | None]


@dataclass(slots=True)
class _Pending:
    row: int
    tracked: TrackedRequest
    plan: SamplePlan


class StepRunner:
    """Stateless apart from the vocabulary size; one instance serves every step."""

    def __init__(self, vocab_size: int, calls: Executor | None = None) -> None:
        self.vocab_size = vocab_size
        self.calls = calls  # isolated mods: one step's mod calls in parallel on this pool

    def _each(self, call: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
        if self.calls is None or len(items) < 2:
            return [call(item) for item in items]
        return list(self.calls.map(call, items))

    def run(
        self,
        logits: torch.Tensor,
        rows: Sequence[TrackedRequest | None],
        protected: Sequence[int],
        options: StepOptions,
    ) -> StepOutput:
        """Run the step for `rows` (aligned with `logits`); `protected[i]`: the row's radix-owned KV."""
        if logits.shape[0] != len(rows):
            raise ValueError(f"{logits.shape[0]} logits rows for {len(rows)} requests")
        tops = self._top_k(logits, rows)
        pending = self._forward_passes(logits, rows)
        self._sample(logits, pending, tops)
        emit = [0] * len(rows)
        plans: list[SyncPlan | None] = [None] * len(rows)
        for i, tracked in enumerate(rows):
            if tracked is not None:
                plans[i] = self._plan(tracked, protected[i], options)
                emit[i] = plans[i].emit  # type: ignore[union-attr]  # checked non-None above
        return StepOutput(emit, plans)

    # ----- 1: trace top-k, batched ------------------------------------------------------------
    def _top_k(
        self, logits: torch.Tensor, rows: Sequence[TrackedRequest | None]
    ) -> tuple[list[int], torch.Tensor, torch.Tensor] | None:
        wanted = [i for i, t in enumerate(rows) if t is not None and t.trace_top_k > 0 and not t.gen.finished]
        if not wanted:
            return None
        # (type: ignore below: rows[i] checked non-None above)
        k = min(max(rows[i].trace_top_k for i in wanted), logits.shape[-1])  # type: ignore[union-attr]
        picked = logits[wanted] if len(wanted) < logits.shape[0] else logits
        values, indices = torch.log_softmax(picked.float(), dim=-1).topk(k, dim=-1)
        return wanted, values, indices

    # ----- 2-3: ForwardPass and edits ---------------------------------------------------------
    def _forward_passes(self, logits: torch.Tensor, rows: Sequence[TrackedRequest | None]) -> list[_Pending]:
        pending: list[_Pending] = []
        edits = LogitsEditBatch(self.vocab_size)
        live = [(i, tracked) for i, tracked in enumerate(rows) if tracked is not None and not tracked.gen.finished]
        for _, tracked in live:
            tracked.gen.low_water = len(tracked.gen.output)
        planned = self._each(lambda row: row[1].gen.forward_pass(logits[row[0]]), live)
        for (i, tracked), plan in zip(live, planned):
            if plan is None:
                continue
            if not shares_row(plan.logits, logits, i):
                edits.replace_row(i, plan.logits)
            pending.append(_Pending(i, tracked, plan))
        if len(edits):
            edits.apply(logits)
        return pending

    # ----- 4-5: sampling and commit -----------------------------------------------------------
    def _sample(
        self,
        logits: torch.Tensor,
        pending: list[_Pending],
        tops: tuple[list[int], torch.Tensor, torch.Tensor] | None,
    ) -> None:
        top_by_row = self._top_lists(tops)
        if not pending:
            return
        index = [p.row for p in pending]
        batch = logits if index == list(range(logits.shape[0])) else logits[index]
        params = [_sampling(p) for p in pending]
        result = sample(batch, params, [p.tracked.live.generator for p in pending])
        befores = [len(p.tracked.gen.trace.tokens) for p in pending]
        sampled = list(zip(pending, result.tokens, result.logprobs))
        self._each(lambda s: s[0].tracked.gen.sampled(s[1], s[2]), sampled)
        for p, before in zip(pending, befores):
            top = top_by_row.get(p.row, [])[: p.tracked.trace_top_k]
            for record in p.tracked.gen.trace.tokens[before:]:
                if not record.forced:
                    record.top_logprobs = top

    @staticmethod
    def _top_lists(tops: tuple[list[int], torch.Tensor, torch.Tensor] | None) -> dict[int, list[tuple[int, float]]]:
        if tops is None:
            return {}
        wanted, values, indices = tops
        ids, vals = indices.tolist(), values.tolist()
        return {row: list(zip(ids[n], vals[n])) for n, row in enumerate(wanted)}

    # ----- 6: plan ----------------------------------------------------------------------------
    @staticmethod
    def _plan(tracked: TrackedRequest, protected: int, options: StepOptions) -> SyncPlan:
        gen = tracked.gen
        rollback, tokens = gen.take_sync()
        plan = plan_sync(
            held=tracked.held,
            rollback=rollback,
            tokens=tokens,
            context=gen.context,
            protected=protected,
            finished=gen.finished,
            decode=options.decode,
            allow_trim=options.allow_trim,
            page_size=options.page_size,
        )
        tracked.plan = plan
        if not gen.finished:
            tracked.held = plan.holds
        return plan


def _sampling(pending: _Pending) -> SamplingParams:
    """The request's sampling settings, with the mod's one-step temperature, minus client top-k.

    Client logprobs come from the trace records (filled from the batched top-k), so the sampler
    need not compute its own alternatives.
    """
    params: SamplingParams = pending.tracked.live.sampling
    temperature = pending.plan.temperature
    if temperature is None and params.top_logprobs == 0:
        return params
    changes: dict[str, object] = {"top_logprobs": 0}
    if temperature is not None:
        changes["temperature"] = temperature
    return dataclasses.replace(params, **changes)  # type: ignore[arg-type]  # checked non-None above
