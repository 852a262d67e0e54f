"""plan_sync: which of append / trim / requeue / finish each edit of a request's tokens needs."""

from __future__ import annotations

from typing import Any

import pytest

from quote_serving.engine.sglang.rollback import SyncKind, plan_sync

S = [10, 11, 12, 13, 14, 15]  # what SGLang holds after the forward (prompt 10, 11 + output)


def plan(rollback: int, tokens: list[int], **overrides: Any) -> Any:
    context = S[: len(S) - rollback] + tokens
    kwargs: dict[str, Any] = {"held": len(S), "protected": 2, "finished": False, "decode": True}
    kwargs.update(overrides)
    return plan_sync(rollback=rollback, tokens=tokens, context=context, **kwargs)


def test_a_sampled_token_is_a_plain_append() -> None:
    p = plan(0, [99])
    assert (p.kind, p.emit, p.holds, p.kv_len) == (SyncKind.APPEND, 99, 7, 6)


def test_backtrack_with_one_reinjected_token_trims_the_erased_tail() -> None:
    p = plan(3, [42])
    assert p.kind is SyncKind.TRIM
    assert p.context == (10, 11, 12, 42) and p.emit == 42
    assert p.kv_len == 3  # KV of 10, 11, 12 stays; 42 is fed by the next decode
    assert p.rollback == 3


def test_backtrack_without_reinjection_recomputes_the_new_last_token() -> None:
    p = plan(2, [])
    assert p.kind is SyncKind.TRIM
    assert p.context == (10, 11, 12, 13) and p.emit == 13
    assert p.kv_len == 3  # 13's KV is dropped too: the next decode recomputes it and gives its logits


def test_no_change_after_a_forward_recomputes_the_last_token() -> None:
    p = plan(0, [])
    assert p.kind is SyncKind.TRIM and p.kv_len == 5 and p.emit == 15


def test_two_or_more_new_tokens_need_a_prefill_so_they_requeue() -> None:
    p = plan(0, [1, 2, 3])
    assert p.kind is SyncKind.REQUEUE
    assert p.context == (*S, 1, 2, 3) and p.kv_len == 6  # the whole of S is reusable from the radix tree


def test_erasing_radix_owned_kv_requeues_instead_of_trimming() -> None:
    assert plan(3, [42], protected=4).kind is SyncKind.REQUEUE
    assert plan(3, [42], protected=3).kind is SyncKind.TRIM


def test_prefill_batches_paged_caches_and_disabled_trim_requeue() -> None:
    assert plan(1, [42], decode=False).kind is SyncKind.REQUEUE
    assert plan(1, [42], page_size=16).kind is SyncKind.REQUEUE
    assert plan(1, [42], allow_trim=False).kind is SyncKind.REQUEUE
    assert plan(0, [42], decode=False).kind is SyncKind.APPEND  # appends never need a trim


def test_a_finished_generation_finishes_whatever_it_changed() -> None:
    p = plan(2, [7, 8], finished=True)
    assert p.kind is SyncKind.FINISH and p.emit == 8


def test_inconsistent_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        plan_sync(held=3, rollback=4, tokens=[], context=[], protected=0, finished=False, decode=True)
    with pytest.raises(ValueError, match="is not held"):
        plan_sync(held=3, rollback=1, tokens=[5], context=[1, 2], protected=0, finished=False, decode=True)
