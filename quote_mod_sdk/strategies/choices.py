"""Compiled `ChoicesStrat`: exactly one of a few strings.

Data flow: the choices' UTF-8 bytes go into one `ByteTrie`; the run's state is a trie node id.
The mask for a node is the set of tokens spelling a path below it (found by walking only that
subtree against the vocabulary), so a token that runs past the end of every choice ("yes" + "!")
is never allowed and the answer always ends on a token boundary.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from .base import CompiledStrategy, StrategyError
from .primitives import ByteTrie
from .token_index import BoolArray, TokenIndex

if TYPE_CHECKING:
    from .strategy_constructor import ChoicesStrat


class CompiledChoices(CompiledStrategy):
    """State: a node id in the choices trie."""

    def __init__(self, strategy: ChoicesStrat, index: TokenIndex):
        super().__init__(strategy, index)
        self.choices = strategy.choices
        self.trie = ByteTrie([c.encode("utf-8") for c in self.choices], index)
        dead = [c for c in self.choices if not self._spellable(c)]
        if dead:
            raise StrategyError(f"the tokenizer cannot spell these choices: {dead!r}")

    def _spellable(self, choice: str) -> bool:
        return self.index.tokenize_literal(choice.encode("utf-8")) is not None

    def initial_state(self) -> int:
        return 0

    def step(self, state: int, data: bytes) -> int | None:
        return self.trie.step(state, data)

    def mask_key(self, state: int) -> Hashable:
        return state

    def compute_mask(self, state: int) -> BoolArray:
        return self.mask_from_ids(self.trie.token_ids(state))

    def is_accepting(self, state: int) -> bool:
        return self.trie.terminal[state] >= 0

    def is_complete(self, state: int) -> bool:
        return self.trie.terminal[state] >= 0 and self.trie.token_ids(state).size == 0

    def forced_bytes(self, state: int) -> bytes | None:
        return self.trie.forced(state)

    def answer_of(self, state: int, data: bytes) -> str:
        """The chosen choice once accepting; before that the partial text."""
        k = self.trie.terminal[state]
        return self.choices[k] if k >= 0 else data.decode("utf-8", "replace")
