"""StepRunner: one batched step of ForwardPass, edits, sampling and commit for real Generations."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from quote_mod_sdk import ForwardPass, mod
from quote_mod_sdk.events import top_k_logprobs
from quote_mod_sdk.generation import Generation, GenerationParams
from quote_serving.engine.sampling import SamplingParams
from quote_serving.engine.sglang.rollback import SyncKind
from quote_serving.engine.sglang.step import StepOptions, StepRunner
from quote_serving.engine.sglang.tracked import RequestTable

PROMPT = [5, 6, 7]
DECODE = StepOptions(decode=True)


@pytest.fixture
def vocab(tokenizer: Any) -> int:
    return len(tokenizer)


def tracked(table: RequestTable, tokenizer: Any, vocab: int, rid: str, mod_: Any = None, **sampling: Any) -> Any:
    params = GenerationParams(max_tokens=8, top_logprobs=3)
    gen = Generation(
        request_id=rid, prompt_tokens=PROMPT, tokenizer=tokenizer, vocab_size=vocab, mod=mod_, params=params
    )
    gen.prefill()
    live = SimpleNamespace(gen=gen, sampling=SamplingParams(**{"temperature": 0.0, **sampling}), generator=None)
    assert table.track(rid, live) == PROMPT
    tracked = table.get(rid)
    assert tracked is not None and tracked.held == len(PROMPT)
    return tracked


def logits_for(rows: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed))


def test_plain_requests_sample_greedily_and_append(tokenizer: Any, vocab: int) -> None:
    table = RequestTable()
    rows = [tracked(table, tokenizer, vocab, f"r{i}") for i in range(3)]
    logits = logits_for(3, vocab)
    expected = logits.argmax(-1).tolist()
    raw = logits.clone()
    out = StepRunner(vocab).run(logits, rows, [3, 3, 3], DECODE)
    assert out.emit == expected
    assert all(p is not None and p.kind is SyncKind.APPEND for p in out.plans)
    for i, row in enumerate(rows):
        assert row.gen.output == [expected[i]] and row.held == len(PROMPT) + 1
        record = row.gen.trace.tokens[-1]
        reference = top_k_logprobs(raw[i], 3)  # what the Generation would record, row by row
        assert [t for t, _ in record.top_logprobs] == [t for t, _ in reference]
        assert [v for _, v in record.top_logprobs] == pytest.approx([v for _, v in reference])


def test_in_place_edits_and_replacement_rows_both_reach_the_sampler(tokenizer: Any, vocab: int) -> None:
    @mod
    def in_place(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass):
            event.logits[11] = 1e9
            return actions.adjust_logits(event.logits)
        return None

    @mod
    def replace(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass):
            row = event.logits.clone()
            row[12] = 1e9
            return actions.adjust_logits(row)
        return None

    table = RequestTable()
    rows = [tracked(table, tokenizer, vocab, "a", in_place), tracked(table, tokenizer, vocab, "b", replace)]
    logits = logits_for(2, vocab)
    out = StepRunner(vocab).run(logits, rows, [3, 3], DECODE)
    assert out.emit == [11, 12]
    assert logits[0, 11] == 1e9 and logits[1, 12] == 1e9  # both written into the batch tensor


def test_a_one_step_temperature_override_applies_to_that_row_only(tokenizer: Any, vocab: int) -> None:
    @mod
    def greedy_now(event, actions):  # type: ignore[no-untyped-def]
        return actions.adjust_logits(token_temp=0.0) if isinstance(event, ForwardPass) else None

    table = RequestTable()
    row = tracked(table, tokenizer, vocab, "hot", greedy_now, temperature=50.0, seed=1)
    logits = logits_for(1, vocab, seed=3)
    out = StepRunner(vocab).run(logits, [row], [3], DECODE)
    assert out.emit == [int(logits[0].argmax())]


def test_forced_tokens_requeue_and_skip_sampling(tokenizer: Any, vocab: int) -> None:
    @mod
    def force(event, actions):  # type: ignore[no-untyped-def]
        return actions.force_tokens([20, 21, 22]) if isinstance(event, ForwardPass) else None

    table = RequestTable()
    row = tracked(table, tokenizer, vocab, "f", force)
    out = StepRunner(vocab).run(logits_for(1, vocab), [row], [3], DECODE)
    plan = out.plans[0]
    assert plan is not None and plan.kind is SyncKind.REQUEUE
    assert plan.context == (*PROMPT, 20, 21, 22) and out.emit == [22]
    assert all(r.forced and not r.top_logprobs for r in row.gen.trace.tokens)


def test_backtrack_with_reinjection_trims_in_place(tokenizer: Any, vocab: int) -> None:
    @mod
    def rewind(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step == 3:
            return actions.backtrack(2, [30])
        return None

    table = RequestTable()
    row = tracked(table, tokenizer, vocab, "b", rewind)
    runner = StepRunner(vocab)
    for step in range(3):
        out = runner.run(logits_for(1, vocab, seed=step), [row], [3], DECODE)
    plan = out.plans[0]
    assert plan is not None and plan.kind is SyncKind.TRIM
    assert plan.context == (*PROMPT, 30) and plan.kv_len == 3 and plan.rollback == 2


def test_rows_without_a_request_emit_zero_and_ended_requests_finish(tokenizer: Any, vocab: int) -> None:
    @mod
    def end(event, actions):  # type: ignore[no-untyped-def]
        return actions.force_output([40, 41]) if isinstance(event, ForwardPass) else None

    table = RequestTable()
    row = tracked(table, tokenizer, vocab, "e", end)
    out = StepRunner(vocab).run(logits_for(2, vocab), [None, row], [0, 3], DECODE)
    assert out.emit[0] == 0 and out.plans[0] is None
    plan = out.plans[1]
    assert plan is not None and plan.kind is SyncKind.FINISH and row.gen.finish_reason == "stop"


def test_a_batch_and_its_requests_must_line_up(tokenizer: Any, vocab: int) -> None:
    table = RequestTable()
    row = tracked(table, tokenizer, vocab, "x")
    with pytest.raises(ValueError, match="2 logits rows for 1 requests"):
        StepRunner(vocab).run(logits_for(2, vocab), [row], [3], DECODE)


def test_tracking_needs_a_freshly_prefilled_generation(tokenizer: Any, vocab: int) -> None:
    table = RequestTable()
    row = tracked(table, tokenizer, vocab, "t")
    assert row.trace_top_k == 3 and row.gen.params.top_logprobs == 0  # computed per batch instead
    with pytest.raises(ValueError, match="freshly prefilled"):
        table.track("t2", row.live)
