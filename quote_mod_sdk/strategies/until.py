"""Compiled `UntilStrat`: a fixed start literal, then free text up to the first end marker.

Data flow: states are tuples
    (START, node)           inside the start literal (a one-string `ByteTrie`; forced text)
    (BODY, ac, utf8)        free text; `ac` = `EndMatcher` state, `utf8` = UTF-8 decoder state
    (DONE, end_len)         the end marker was emitted (it was `end_len` bytes long)
The body mask is `utf8_ok[utf8]` (precomputed per tokenizer) minus the few tokens that would
complete the end marker before their last byte (precomputed per matcher state at compile time), so
a cold mask is one copy plus a small scatter and a warm one is a dict hit.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from .base import CompiledStrategy, StrategyError
from .primitives import ByteTrie, EndMatcher, UntilEndType
from .token_index import BoolArray, TokenIndex, utf8_advance

if TYPE_CHECKING:
    from .strategy_constructor import UntilStrat

START, BODY, DONE = 0, 1, 2
State = tuple[int, ...]


class CompiledUntil(CompiledStrategy):
    """Start literal -> UTF-8 text -> end tag (or any end character)."""

    def __init__(self, strategy: UntilStrat, index: TokenIndex):
        super().__init__(strategy, index)
        self.start_bytes = strategy.start.encode("utf-8")
        self.start_trie = ByteTrie([self.start_bytes], index) if self.start_bytes else None
        if strategy.end_type is UntilEndType.TAG:
            patterns = [strategy.end.encode("utf-8")]
        else:
            patterns = [ch.encode("utf-8") for ch in dict.fromkeys(strategy.end)]
        for literal in ([self.start_bytes] if self.start_bytes else []) + patterns:
            if index.tokenize_literal(literal) is None:
                raise StrategyError(f"the tokenizer cannot spell {literal.decode('utf-8')!r}")
        self.matcher = EndMatcher(patterns, index)
        index.utf8_ok  # noqa: B018 (build the per-tokenizer UTF-8 table now, not on the first mask)

    def initial_state(self) -> State:
        return (START, 0) if self.start_trie is not None else (BODY, 0, 0)

    def step(self, state: State, data: bytes) -> State | None:
        phase = state[0]
        if phase == START:
            assert self.start_trie is not None
            node = self.start_trie.step(state[1], data)
            if node is None:
                return None
            return (BODY, 0, 0) if self.start_trie.terminal[node] >= 0 else (START, node)
        if phase == BODY:
            utf8 = utf8_advance(state[2], data)
            if utf8 < 0:
                return None
            ac, end_len = self.matcher.run(state[1], data)
            if ac == EndMatcher.MATCH:
                return (DONE, end_len) if end_len > 0 else None
            return (BODY, ac, utf8)
        return None

    def mask_key(self, state: State) -> Hashable:
        return state if state[0] != DONE else (DONE,)

    def compute_mask(self, state: State) -> BoolArray:
        phase = state[0]
        if phase == START:
            assert self.start_trie is not None
            return self.mask_from_ids(self.start_trie.token_ids(state[1]))
        if phase == BODY:
            mask: BoolArray = self.index.utf8_ok[state[2]].copy()
            mask[self.matcher.bad_ids[state[1]]] = False
            return mask
        return self._empty.copy()

    def is_accepting(self, state: State) -> bool:
        return state[0] == DONE

    def is_complete(self, state: State) -> bool:
        return state[0] == DONE

    def forced_bytes(self, state: State) -> bytes | None:
        if state[0] == START and self.start_trie is not None:
            return self.start_trie.forced(state[1])
        return None

    def answer_of(self, state: State, data: bytes) -> str:
        """The text between the start literal and the end marker (both excluded)."""
        if state[0] == START:
            return ""
        body = data[len(self.start_bytes) :]
        if state[0] == DONE:
            body = body[: len(body) - state[1]]
        return body.decode("utf-8", "replace")
