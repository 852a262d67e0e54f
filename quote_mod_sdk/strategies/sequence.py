"""`SeqStrat`: literals and one inner strategy in a row, e.g. `"` item `"` or a list then `.`.

Data flow: `ListStrat(wrap=…)` wraps each element as `SeqStrat((wrap, element, wrap))` and
`ListStrat(end_with=…)` compiles as `SeqStrat((list, end_with))`. The state is a tuple of threads
`(part, sub, buf, answer)`: `sub` is a `ByteTrie` node inside a literal part or the inner strategy's
state, `buf` the inner strategy's bytes so far, `answer` the inner answer once it ended. Threads
exist because an inner strategy may be complete-but-continuable exactly where the next literal
could start; each reading is kept until a token decides (as in `lists.py`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import CompiledStrategy, Strategy, StrategyError, normalize_threads
from .primitives import ByteTrie
from .token_index import BoolArray, TokenIndex

Thread = tuple[int, Any, bytes, Any]
SeqState = tuple[Thread, ...]


@dataclass(frozen=True)
class SeqStrat(Strategy):
    """Parts in order: non-empty literal strings and strategies; the answer is the answer of the
    strategy parts (one strategy: its answer; several: a list of them)."""

    parts: tuple[str | Strategy, ...]

    def __post_init__(self) -> None:
        if not self.parts or any(not isinstance(p, (str, Strategy)) or p == "" for p in self.parts):
            raise ValueError(f"SeqStrat needs non-empty literals and strategies, got {self.parts!r}")

    def _build(self, index: TokenIndex) -> CompiledStrategy:
        return CompiledSeq(self, index)


class CompiledSeq(CompiledStrategy):
    """Literal tries and compiled inner strategies, walked one part after another."""

    def __init__(self, strategy: SeqStrat, index: TokenIndex):
        super().__init__(strategy, index)
        self.parts: list[ByteTrie | CompiledStrategy] = []
        for part in strategy.parts:
            if isinstance(part, str):
                data = part.encode("utf-8")
                if index.tokenize_literal(data) is None:
                    raise StrategyError(f"the tokenizer cannot spell {part!r}")
                self.parts.append(ByteTrie([data], index))
            else:
                self.parts.append(part.compile(index))
        self.n_inner = sum(isinstance(p, CompiledStrategy) for p in self.parts)

    def _enter(self, k: int, answers: Any) -> list[Thread]:
        if k >= len(self.parts):
            return [(k, None, b"", answers)]
        part = self.parts[k]
        sub = part.initial_state() if isinstance(part, CompiledStrategy) else 0
        return [(k, sub, b"", answers)]

    def _expand(self, thread: Thread) -> tuple[bool, list[Thread]]:
        k, sub, buf, answers = thread
        if k >= len(self.parts):
            return True, []
        part = self.parts[k]
        if isinstance(part, ByteTrie):
            if part.terminal[sub] >= 0:
                return False, self._enter(k + 1, answers)
            return True, []
        stays = not part.is_complete(sub)
        if part.is_accepting(sub):
            return stays, self._enter(k + 1, (*answers, part.answer_of(sub, buf)))
        return stays, []

    def _normalize(self, threads: list[Thread]) -> SeqState:
        return normalize_threads(threads, self._expand, self._thread_key)

    def _thread_key(self, thread: Thread) -> Hashable:
        k, sub, _, _ = thread
        if k >= len(self.parts):
            return (k,)
        part = self.parts[k]
        return (k, part.mask_key(sub) if isinstance(part, CompiledStrategy) else sub)

    def initial_state(self) -> SeqState:
        return self._normalize(self._enter(0, ()))

    def step(self, state: SeqState, data: bytes) -> SeqState | None:
        moved: list[Thread] = []
        for k, sub, buf, answers in state:
            if k >= len(self.parts):
                continue
            part = self.parts[k]
            nxt = part.step(sub, data)
            if nxt is not None:
                moved.append((k, nxt, buf + data if isinstance(part, CompiledStrategy) else buf, answers))
        return self._normalize(moved) or None if moved else None

    def mask_key(self, state: SeqState) -> Hashable:
        return tuple(self._thread_key(t) for t in state)

    def compute_mask(self, state: SeqState) -> BoolArray:
        out = self._empty.copy()
        for k, sub, _, _ in state:
            if k >= len(self.parts):
                continue
            part = self.parts[k]
            m = part.mask(sub) if isinstance(part, CompiledStrategy) else self.mask_from_ids(part.token_ids(sub))
            np.logical_or(out, m, out=out)
        return out

    def is_accepting(self, state: SeqState) -> bool:
        return any(t[0] >= len(self.parts) for t in state)

    def is_complete(self, state: SeqState) -> bool:
        return bool(state) and all(t[0] >= len(self.parts) for t in state)

    def forced_bytes(self, state: SeqState) -> bytes | None:
        if len(state) != 1 or state[0][0] >= len(self.parts):
            return None
        k, sub, _, _ = state[0]
        part = self.parts[k]
        return part.forced_bytes(sub) if isinstance(part, CompiledStrategy) else part.forced(sub)

    def answer_of(self, state: SeqState, data: bytes) -> Any:
        done = [t for t in state if t[0] >= len(self.parts)]
        answers = (done[0] if done else state[0])[3] if state else ()
        if self.n_inner == 1:
            return answers[0] if answers else None
        return list(answers)
