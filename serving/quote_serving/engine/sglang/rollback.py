"""How to bring one SGLang request to what its `Generation` now wants, after one step.

SGLang's invariant for a running request: it holds tokens S (prompt + output), the KV cache holds
every token of S but the last, and the next decode step feeds S[-1]. After a step's forward the
KV covers all of S (`held` tokens) and SGLang appends the token this step emits.

A mod may instead have erased the last `rollback` tokens and added `tokens` (forced, reinjected or
sampled): the request should hold D = S[:held - rollback] + tokens. `plan_sync` picks the cheapest
way there:

    APPEND   nothing erased, one token added: SGLang appends it, as for any sampled token.
    TRIM     at most one token added: free the KV of the erased tail in place (and of D[-1], which
             the next decode recomputes), emit D[-1]. No prefill at all.
    REQUEUE  two or more tokens to compute, or the erased KV belongs to the radix tree (it was
             cached by a prefill), or trimming is off: cache S's KV in the radix tree, reset the
             request and queue it again; its next prefill matches D's prefix in the tree and
             computes only the new tokens.
    FINISH   the generation ended: SGLang finishes the request (its KV goes to the radix tree).

The planner is pure (plain ints and lists), so every case is unit-tested without SGLang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

__all__ = ["SyncKind", "SyncPlan", "plan_sync"]


class SyncKind(str, Enum):
    APPEND = "append"
    TRIM = "trim"
    REQUEUE = "requeue"
    FINISH = "finish"


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What the scheduler does to one request after a step (see the module docstring)."""

    kind: SyncKind
    emit: int  # the token SGLang appends and relays as the next decode input
    context: tuple[int, ...] = ()  # D, the full sequence the request must hold (TRIM, REQUEUE)
    kv_len: int = 0  # KV slots kept (TRIM: len(D) - 1; REQUEUE: the prefix the radix match can reuse)
    rollback: int = 0  # tokens erased from what SGLang held (for the engine's counters)

    @property
    def holds(self) -> int:
        """Tokens SGLang holds once the plan is applied."""
        return len(self.context)


def plan_sync(
    *,
    held: int,
    rollback: int,
    tokens: Sequence[int],
    context: Sequence[int],
    protected: int,
    finished: bool,
    decode: bool,
    allow_trim: bool = True,
    page_size: int = 1,
) -> SyncPlan:
    """Choose APPEND / TRIM / REQUEUE / FINISH for one request after one step.

    held: tokens SGLang holds after this step's forward (all have KV); rollback, tokens: what
    `Generation.take_sync()` returned; context: the generation's full sequence afterwards (D);
    protected: KV slots owned by the radix tree (`req.cache_protected_len`), never freed here;
    decode: the step was a decode batch (a prefill batch's tensors are merged later, so only
    decode batches are trimmed in place).
    """
    if finished:
        return SyncPlan(SyncKind.FINISH, emit=tokens[-1] if tokens else 0, context=tuple(context))
    _check(held, rollback, tokens, context)
    if rollback == 0 and len(tokens) == 1:
        return SyncPlan(SyncKind.APPEND, emit=int(tokens[0]), context=tuple(context), kv_len=held)
    kv_needed = len(context) - 1
    trimmable = allow_trim and decode and page_size == 1 and len(tokens) <= 1 and kv_needed >= protected
    if trimmable:
        return SyncPlan(SyncKind.TRIM, int(context[-1]), tuple(context), kv_len=kv_needed, rollback=rollback)
    return SyncPlan(SyncKind.REQUEUE, int(context[-1]), tuple(context), kv_len=held - rollback, rollback=rollback)


def _check(held: int, rollback: int, tokens: Sequence[int], context: Sequence[int]) -> None:
    if not 0 <= rollback <= held:
        raise ValueError(f"rollback {rollback} outside [0, {held}]: the engine holds {held} tokens")
    if len(context) != held - rollback + len(tokens):
        raise ValueError(
            f"context of {len(context)} tokens is not held ({held}) - rollback ({rollback}) + {len(tokens)} new tokens"
        )
    if not context:
        raise ValueError("a request cannot hold an empty sequence: the prompt is never erased")
