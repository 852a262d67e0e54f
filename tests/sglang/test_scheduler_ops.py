"""SchedulerOps on SGLang-shaped objects: exactly which slots a trim frees, what a requeue leaves behind."""

from __future__ import annotations

from array import array
from types import SimpleNamespace
from typing import Any

import pytest

from quote_serving.engine.sglang.rollback import SyncKind, SyncPlan
from quote_serving.engine.sglang.scheduler_ops import SchedulerOps

from .fake_sglang import FakeApi, FakeBatch, FakeReq, FakeScheduler, GenerateInput

PROMPT = [1, 2, 3]


def running(scheduler: FakeScheduler, output: list[int]) -> tuple[FakeReq, FakeBatch]:
    """A request after a decode step: KV for prompt + output, the prompt cached in the radix tree."""
    req = FakeReq(GenerateInput("r", array("q", PROMPT), 100))
    scheduler._prefill(req)
    req.output_ids = array("q", output)
    seq = req.seq
    slots = scheduler.token_to_kv_pool_allocator.alloc(len(output))
    for pos, slot in enumerate(slots, start=len(PROMPT)):
        scheduler.token_to_kv_pool_allocator.token[slot] = seq[pos]
        scheduler.req_to_token_pool.req_to_token[req.req_pool_idx, pos] = slot
    req.kv_committed_len = req.kv.kv_allocated_len = len(seq)
    req.cache_protected_len = len(PROMPT)
    return req, FakeBatch([req], decode=True)


def ops_for(scheduler: FakeScheduler) -> SchedulerOps:
    return SchedulerOps(FakeApi(scheduler))  # type: ignore[arg-type]


def trim_plan(context: list[int], kv_len: int) -> SyncPlan:
    return SyncPlan(SyncKind.TRIM, context[-1], tuple(context), kv_len=kv_len)


def test_trim_frees_exactly_the_erased_slots_and_shortens_the_batch_row() -> None:
    scheduler = FakeScheduler(SimpleNamespace(config=SimpleNamespace(vocab_size=64)))
    req, batch = running(scheduler, [4, 5, 6, 7])
    row = scheduler.req_to_token_pool.req_to_token[req.req_pool_idx]
    erased = row[4:7].tolist()  # KV of 5, 6, 7 (positions 4..6); 4 stays, 9 will be fed next
    free_before = len(scheduler.token_to_kv_pool_allocator.free_slots)
    req.full_untruncated_fill_ids = array("q", [*PROMPT, 4, 5])
    ops_for(scheduler).trim(scheduler, batch, 0, req, trim_plan([*PROMPT, 4, 9], kv_len=4))
    assert scheduler.token_to_kv_pool_allocator.free_slots[free_before:] == erased
    assert list(req.output_ids) == [4, 9] and len(req.full_untruncated_fill_ids) == 0
    assert req.kv_committed_len == req.kv.kv_allocated_len == 4
    assert int(batch.seq_lens[0]) == int(batch.seq_lens_cpu[0]) == int(batch.orig_seq_lens[0]) == 4
    assert batch.seq_lens_sum is None


def test_trim_refuses_to_free_kv_the_radix_tree_owns() -> None:
    scheduler = FakeScheduler(SimpleNamespace(config=SimpleNamespace(vocab_size=64)))
    req, batch = running(scheduler, [4])
    with pytest.raises(ValueError, match="radix-owned"):
        ops_for(scheduler).trim(scheduler, batch, 0, req, trim_plan([1, 2, 9], kv_len=2))


def test_requeue_caches_the_old_kv_resets_and_queues_with_the_new_tokens() -> None:
    scheduler = FakeScheduler(SimpleNamespace(config=SimpleNamespace(vocab_size=64)))
    req, batch = running(scheduler, [4, 5])
    other, _ = running(scheduler, [8])
    other.rid = "other"
    batch = FakeBatch([req, other], decode=True)
    plan = SyncPlan(SyncKind.REQUEUE, 22, (*PROMPT, 4, 20, 21, 22), kv_len=4)
    ops_for(scheduler).requeue(scheduler, batch, [(0, req, plan)])
    assert scheduler.tree_cache.entries[-1][0] == (*PROMPT, 4, 5)  # what had KV, now in the tree
    assert req.kv is None and req.req_pool_idx is None and req.is_retracted
    assert list(req.output_ids) == [4, 20, 21, 22]
    assert [r.rid for r in batch.reqs] == ["other"] and scheduler.waiting == [req]
    assert scheduler.tree_cache.match([*PROMPT, 4, 20, 21, 22], limit=6) != []


def test_a_plan_may_never_rewrite_the_prompt() -> None:
    scheduler = FakeScheduler(SimpleNamespace(config=SimpleNamespace(vocab_size=64)))
    req, batch = running(scheduler, [4])
    with pytest.raises(ValueError, match="may not change the prompt"):
        ops_for(scheduler).trim(scheduler, batch, 0, req, trim_plan([1, 9, 3, 4], kv_len=3))


def test_finish_hands_sglang_a_finish_reason(monkeypatch: Any) -> None:
    scheduler = FakeScheduler(SimpleNamespace(config=SimpleNamespace(vocab_size=64)))
    req, _ = running(scheduler, [4])
    ops_for(scheduler).finish(req, "tool_calls")
    assert req.to_finish.to_json() == {"type": "stop", "matched": "quote:tool_calls"}
