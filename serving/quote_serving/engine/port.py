"""The engine port: what the mod runtime needs from a model backend, and nothing more.

Data flow: the mod runtime registers a sequence (`add_sequence`), then loops: it calls `forward` on
every live sequence at once (one batched model call), samples or forces tokens from the returned
logits, and feeds them back with `extend`. Mods that backtrack call `rollback`; the backend trims
the sequence's KV cache in place so that only the tokens after the rollback point are computed again.

A backend owns the KV cache of each sequence and knows nothing about mods or sampling policy, so
the runtime can swap an embedded torch backend for a remote engine behind the same contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@dataclass
class EngineStats:
    """Monotonic counters; tests and metrics read them to prove what work a step actually did."""

    forward_calls: int = 0  # model invocations (a forward() served from cached logits is not one)
    tokens_computed: int = 0  # tokens run through the model, summed over all forward calls
    sequences_added: int = 0
    sequences_removed: int = 0
    rollbacks: int = 0
    tokens_rolled_back: int = 0


@runtime_checkable
class EngineBackend(Protocol):
    """Owns the KV cache of each sequence; knows nothing about mods or sampling policy."""

    vocab_size: int  # length of a logits row
    device: torch.device
    stats: EngineStats

    def add_sequence(self, seq_id: str, prompt: Sequence[int]) -> None:
        """Register a sequence; the prompt is computed (prefilled) on the next forward()."""
        ...

    def extend(self, seq_id: str, tokens: Sequence[int]) -> None:
        """Append tokens (sampled or forced); they are computed on the next forward()."""
        ...

    def rollback(self, seq_id: str, n: int) -> None:
        """Drop the last n tokens (0 <= n <= length), trimming the KV cache in place.

        The next-token logits at the new length L come from token L-1's hidden state, which is not
        stored, so token L-1 becomes pending again: the next forward computes it (plus anything
        extended meanwhile) and nothing before it.
        """
        ...

    def forward(self, seq_ids: Sequence[str]) -> torch.Tensor:
        """One batched model call over all pending tokens of these sequences.

        Returns float32 logits [len(seq_ids), vocab_size] for each sequence's next token, in order.
        """
        ...

    def remove_sequence(self, seq_id: str) -> None:
        """Forget the sequence and free its cache."""
        ...

    def length(self, seq_id: str) -> int:
        """Tokens in the sequence, computed plus pending."""
        ...


class EngineError(Exception):
    """Base of every error a backend raises on a bad call or an exhausted resource."""


class UnknownSequenceError(EngineError, LookupError):
    """The seq_id was never added or was already removed."""

    def __init__(self, seq_id: str) -> None:
        super().__init__(f"unknown sequence {seq_id!r}: call add_sequence() first (or it was already removed)")
        self.seq_id = seq_id


class DuplicateSequenceError(EngineError, ValueError):
    """add_sequence() with an id that is still live."""

    def __init__(self, seq_id: str) -> None:
        super().__init__(f"sequence {seq_id!r} already exists: remove_sequence() it first or pick a new id")
        self.seq_id = seq_id


class InvalidTokenError(EngineError, ValueError):
    """A token id outside the model's vocabulary (or not an int)."""


class EmptySequenceError(EngineError, ValueError):
    """A sequence with no tokens: nothing to condition the next-token logits on."""


class InvalidRollbackError(EngineError, ValueError):
    """rollback(n) with n < 0 or n greater than the sequence length."""


class InvalidBatchError(EngineError, ValueError):
    """forward() with no ids, or the same id twice."""


class CapacityError(EngineError):
    """Out of sequence slots, cache budget, or the model's context window."""
