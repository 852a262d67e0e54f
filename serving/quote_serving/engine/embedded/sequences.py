"""Token bookkeeping of one sequence: which tokens exist, which are already in the KV cache.

Invariant: tokens[:computed] have valid K/V in the cache; tokens[computed:] are pending and run
through the model on the next forward. `logits` caches the next-token logits of the last forward,
valid only while nothing has changed since (so a repeated forward costs no model call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from quote_serving.engine.port import InvalidRollbackError


@dataclass
class SequenceState:
    """The token list of one sequence and how much of it the cache already covers."""

    tokens: list[int] = field(default_factory=list)
    computed: int = 0
    logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pending(self) -> list[int]:
        return self.tokens[self.computed :]

    def extend(self, tokens: Sequence[int]) -> None:
        if tokens:
            self.tokens.extend(tokens)
            self.logits = None

    def rollback(self, n: int) -> int:
        """Drop the last n tokens; returns how many cached tokens stay valid.

        The last kept token turns pending again: the next logits come from its hidden state, which
        the cache does not hold (it holds only its K/V).
        """
        if not 0 <= n <= len(self.tokens):
            raise InvalidRollbackError(
                f"cannot roll back {n} tokens of a sequence of length {len(self.tokens)}: "
                "n must be between 0 and the current length"
            )
        if n == 0:
            return self.computed
        del self.tokens[len(self.tokens) - n :]
        self.computed = min(self.computed, max(len(self.tokens) - 1, 0))
        self.logits = None
        return self.computed

    def next_logits(self) -> torch.Tensor:
        if self.logits is None:
            raise RuntimeError("next-token logits requested before the forward that computes them")
        return self.logits

    def mark_computed(self, logits: torch.Tensor) -> None:
        """Record a successful forward: every token is cached and these are the next-token logits."""
        self.computed = len(self.tokens)
        self.logits = logits
