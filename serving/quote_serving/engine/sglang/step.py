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

With isolated mods (`submit` set: each mod call is a round trip to a worker process) the step is
one round trip per request when the mods let it stand, as on the embedded engine: each row is
sampled before its mod has answered ForwardPass, as if the answer will be noop, and ForwardPass,
Sampled and Added go to the worker in one frame (`Generation.after_noop_forward_pass`); every
request's call is in flight at once, driven on this thread (`runtime/mod_steps.py`). A ForwardPass
answer that is not noop rewinds the request's generator, and its plan is edited in and sampled as
above (its Sampled then carries its Added). SGLang forms the batch and expects a token for every
row, so here a late mod still holds its step (up to its budget); the embedded engine lets it sit
out instead (`runtime/dispatch.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from quote_mod_sdk.generation import SamplePlan
from quote_serving.engine.sampling import Guess, SamplingParams, sample, sample_ahead
from quote_serving.engine.sglang.logits_edits import LogitsEditBatch, shares_row
from quote_serving.engine.sglang.rollback import SyncPlan, plan_sync
from quote_serving.engine.sglang.tracked import TrackedRequest
from quote_serving.runtime.mod_calls import Ticket
from quote_serving.runtime.mod_steps import Job, drive

__all__ = ["StepOptions", "StepOutput", "StepRunner"]

SubmitFor = Callable[[TrackedRequest, Any, Sequence[Any]], Ticket]  # (request, event, then) → its ticket


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

    def __init__(self, vocab_size: int, submit: SubmitFor | None = None, wait_s: float = 60.0) -> None:
        self.vocab_size = vocab_size
        self.submit = submit  # isolated mods: where a request's call goes, without waiting
        self.wait_s = wait_s  # isolated mods: the longest a step waits for calls the pool has not failed

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
        if self.submit is None:
            pending = self._forward_passes(logits, rows)
            self._sample(logits, pending, tops)
        else:
            self._isolated(logits, rows, tops)
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
        return self._edited(logits, [(i, t, t.gen.forward_pass(logits[i])) for i, t in _live(rows)])

    def _edited(
        self, logits: torch.Tensor, planned: Sequence[tuple[int, TrackedRequest, SamplePlan | None]]
    ) -> list[_Pending]:
        """The plans that sample (a plan of None ends or forces instead), their logits edits
        applied to the batch in one go."""
        pending = [_Pending(i, tracked, plan) for i, tracked, plan in planned if plan is not None]
        edits = LogitsEditBatch(self.vocab_size)
        for p in pending:
            if not shares_row(p.plan.logits, logits, p.row):
                edits.replace_row(p.row, p.plan.logits)
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
        for p, token, logprob in zip(pending, result.tokens, result.logprobs):
            p.tracked.gen.sampled(token, logprob)
        self._record_tops([(p.row, p.tracked) for p in pending], befores, top_by_row)

    @staticmethod
    def _record_tops(
        rows: Sequence[tuple[int, TrackedRequest]],
        befores: Sequence[int],
        top_by_row: dict[int, list[tuple[int, float]]],
    ) -> None:
        """The batch's top-k alternatives onto the tokens each request sampled this step."""
        for (row, tracked), before in zip(rows, befores):
            top = top_by_row.get(row, [])[: tracked.trace_top_k]
            for record in tracked.gen.trace.tokens[before:]:
                if not record.forced:
                    record.top_logprobs = top

    # ----- 2-5 with isolated mods: one round trip per request when its mod lets the step stand ---
    def _isolated(
        self,
        logits: torch.Tensor,
        rows: Sequence[TrackedRequest | None],
        tops: tuple[list[int], torch.Tensor, torch.Tensor] | None,
    ) -> None:
        live = _live(rows)
        guesses = self._guess(logits, live)
        jobs = []
        for (i, tracked), guess in zip(live, guesses):
            then = tracked.gen.after_noop_forward_pass(guess.token) if guess is not None else ()
            jobs.append(Job(tracked.gen.forward_pass_steps(logits[i]), self._submitter(tracked), then))
        drive(jobs, self.wait_s)
        _raise_first(jobs)
        planned: list[tuple[int, TrackedRequest, SamplePlan | None]] = []
        sampling: list[tuple[int, TrackedRequest, Job]] = []
        for (i, tracked), guess, job in zip(live, guesses, jobs):
            plan = job.result if not tracked.gen.finished else None
            if plan is not None and guess is not None and job.kept is not None:
                steps = tracked.gen.sampled_steps(guess.token, guess.logprob)  # its answers are out already
                sampling.append((i, tracked, Job(steps, self._submitter(tracked), follow=job.kept)))
                continue
            if guess is not None:
                guess.rewind(tracked.live.generator)  # the draw never happened
            planned.append((i, tracked, plan))
        pending = self._edited(logits, planned)
        if pending:
            index = [p.row for p in pending]
            result = sample(logits[index], [_sampling(p) for p in pending], [p.tracked.live.generator for p in pending])
            for p, token, logprob in zip(pending, result.tokens, result.logprobs):
                steps = p.tracked.gen.sampled_steps(token, logprob)
                added = (p.tracked.gen.added_after_sampled(token),)
                sampling.append((p.row, p.tracked, Job(steps, self._submitter(p.tracked), added)))
        befores = [len(tracked.gen.trace.tokens) for _, tracked, _ in sampling]
        drive([job for _, _, job in sampling], self.wait_s)
        _raise_first([job for _, _, job in sampling])
        self._record_tops([(i, tracked) for i, tracked, _ in sampling], befores, self._top_lists(tops))

    def _guess(self, logits: torch.Tensor, live: Sequence[tuple[int, TrackedRequest]]) -> list[Guess | None]:
        """Each row with a mod sampled as the step samples it after a noop ForwardPass answer."""
        mine = [n for n, (_, tracked) in enumerate(live) if tracked.gen.mod is not None]
        guesses: list[Guess | None] = [None] * len(live)
        if not mine:
            return guesses
        requests = [live[n][1] for n in mine]
        params = [_plain_sampling(t.live.sampling) for t in requests]
        drawn = sample_ahead(logits[[live[n][0] for n in mine]], params, [t.live.generator for t in requests])
        for n, guess in zip(mine, drawn):
            guesses[n] = guess
        return guesses

    def _submitter(self, tracked: TrackedRequest) -> Callable[[Any, Sequence[Any]], Ticket]:
        submit = self.submit
        assert submit is not None
        return lambda event, then: submit(tracked, event, then)

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
    params = _plain_sampling(pending.tracked.live.sampling)
    temperature = pending.plan.temperature
    return params if temperature is None else dataclasses.replace(params, temperature=temperature)


def _live(rows: Sequence[TrackedRequest | None]) -> list[tuple[int, TrackedRequest]]:
    """The rows that are Quote requests still running, each marked at its output's length now."""
    live = [(i, tracked) for i, tracked in enumerate(rows) if tracked is not None and not tracked.gen.finished]
    for _, tracked in live:
        tracked.gen.low_water = len(tracked.gen.output)
    return live


def _plain_sampling(params: SamplingParams) -> SamplingParams:
    return params if params.top_logprobs == 0 else dataclasses.replace(params, top_logprobs=0)


def _raise_first(jobs: Sequence[Job]) -> None:
    """What a request's steps raised (not a mod's failure: that fails the request in its steps)
    ends the step, as it does with inline mods."""
    for job in jobs:
        if job.error is not None:
            raise job.error
