"""The original SDK's strategy runtime protocol, served by our compiled strategies.

Data flow: `ChoicesStrat([...]).into_strategy(tokenizer)` returns a `ChoicesStrategy` (and so on
for each kind); its `start(tokenizer)` gives a `RuntimeState` (our `StrategyRun`), then per token
`allowed_tokens(state, tokenizer)` / `disallowed_tokens(...)`, `step(state, token_id, tokenizer)`
and `is_complete(state)`. The primitive classes can also be built the original way
(`UntilStrategy(start_tag, end_type, stop)`, `CharsStrategy(kind, stop, min_chars)`,
`ChoicesStrategy(root_trie)`, `TokensStrategy(ids)`, `ListStrategy(open_ids=…, elements=…)`);
those compile on their first `start(tokenizer)`. One implementation serves both spellings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import CompiledStrategy, RuntimeState, Strategy, StrategyError
from .primitives import CharsMode, UntilEndType


@dataclass
class TrieNode:
    """A token-id trie node (the original's `ChoicesStrategy(root)` input)."""

    children: dict[int, TrieNode] = field(default_factory=dict)
    terminal: bool = False

    def insert(self, sequence: Sequence[int]) -> None:
        node = self
        for t in sequence:
            node = node.children.setdefault(int(t), TrieNode())
        node.terminal = True

    def sequences(self) -> list[list[int]]:
        """Every terminal path, in insertion order."""
        out: list[list[int]] = []
        stack: list[tuple[TrieNode, list[int]]] = [(self, [])]
        while stack:
            node, path = stack.pop()
            if node.terminal and path:
                out.append(path)
            stack.extend((child, [*path, t]) for t, child in reversed(list(node.children.items())))
        return out


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return str(tokenizer.decode([int(t) for t in ids], skip_special_tokens=True)) if ids else ""


class RuntimeStrategy:
    """A strategy bound to a tokenizer, driven token by token through a `RuntimeState`."""

    prefix_wins = False  # complete as soon as accepting (the original's choices do so)

    def __init__(self, spec: Strategy | None = None) -> None:
        self.spec = spec
        self._compiled: CompiledStrategy | None = None

    def describe(self, tokenizer: Any) -> Strategy:
        """The strategy description this runtime strategy runs (built from original-style
        arguments with `tokenizer` when it was constructed directly)."""
        if self.spec is None:
            self.spec = self._describe(tokenizer)
        return self.spec

    def _describe(self, tokenizer: Any) -> Strategy:
        raise StrategyError(f"{type(self).__name__} has nothing to compile")

    def compiled(self, tokenizer: Any) -> CompiledStrategy:
        if self._compiled is None:
            self._compiled = self.describe(tokenizer).compile(tokenizer)
        return self._compiled

    def start(self, tokenizer: Any) -> RuntimeState:
        return self.compiled(tokenizer).start()

    def allowed_tokens(self, state: RuntimeState, tokenizer: Any) -> set[int]:
        return {int(i) for i in np.flatnonzero(state.allowed_mask())}

    def disallowed_tokens(self, state: RuntimeState, tokenizer: Any) -> set[int]:
        """End of sequence while the answer is unfinished (our masks never allow it anyway)."""
        eos = getattr(tokenizer, "eos_token_id", None)
        if isinstance(eos, int) and not state.accepting:
            return {eos}
        return set()

    def step(self, state: RuntimeState, token_id: int, tokenizer: Any) -> None:
        state.advance([int(token_id)])

    def is_complete(self, state: RuntimeState) -> bool:
        return state.is_complete or (self.prefix_wins and state.accepting)

    def trim_answer(self, answer: str) -> str:
        return answer

    @classmethod
    def _of(cls, spec: Strategy) -> RuntimeStrategy:
        obj = object.__new__(cls)
        RuntimeStrategy.__init__(obj, spec)
        return obj

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r}>"


class ChoicesStrategy(RuntimeStrategy):
    """One of a few strings; complete once one is matched (a shorter choice wins, as originally)."""

    prefix_wins = True

    def __init__(self, root: TrieNode) -> None:
        super().__init__()
        self._root = root

    def _describe(self, tokenizer: Any) -> Strategy:
        from .strategy_constructor import ChoicesStrat

        return ChoicesStrat([_decode(tokenizer, seq) for seq in self._root.sequences()])


class UntilStrategy(RuntimeStrategy):
    def __init__(self, start_tag: str | None, end_type: UntilEndType, stop: str) -> None:
        from .strategy_constructor import UntilStrat

        super().__init__(UntilStrat(start_tag or "", end_type, stop))


class CharsStrategy(RuntimeStrategy):
    def __init__(
        self, kind: CharsMode, stop: int | str, min_chars: int = 0, include_stop_in_answer: bool = False
    ) -> None:
        from .strategy_constructor import CharsStrat

        super().__init__(CharsStrat(kind, stop, min_chars))


class ListStrategy(RuntimeStrategy):
    def __init__(
        self,
        open_ids: Sequence[int] = (),
        close_ids: Sequence[int] = (),
        wrap_ids: Sequence[int] = (),
        sep_ids: Sequence[int] = (),
        end_with_ids: Sequence[int] = (),
        min_elements: int = 0,
        max_elements: int | None = None,
        elements: RuntimeStrategy | Sequence[RuntimeStrategy] | None = None,
    ) -> None:
        super().__init__()
        self._ids = (open_ids, close_ids, wrap_ids, sep_ids, end_with_ids)
        self._bounds = (min_elements, max_elements)
        self._elements = elements

    def _describe(self, tokenizer: Any) -> Strategy:
        from .strategy_constructor import ListStrat

        opn, close, wrap, sep, end_with = (_decode(tokenizer, ids) for ids in self._ids)
        elems = self._elements
        if elems is None:
            raise StrategyError("ListStrategy needs elements")
        item: Strategy | list[Strategy] = (
            elems.describe(tokenizer) if isinstance(elems, RuntimeStrategy) else [e.describe(tokenizer) for e in elems]
        )
        lo, hi = self._bounds
        return ListStrat(item, sep, opn, close, lo, hi, wrap=wrap, end_with=end_with)


class TokensStrategy(RuntimeStrategy):
    """Exactly one token out of `token_ids`."""

    def __init__(self, token_ids: Iterable[int]) -> None:
        super().__init__()
        self._ids = {int(t) for t in token_ids}
        if not self._ids:
            raise ValueError("TokensStrategy needs at least one token id")

    def start(self, tokenizer: Any) -> RuntimeState:
        return _TokensState(self._ids)  # type: ignore[return-value]

    def allowed_tokens(self, state: RuntimeState, tokenizer: Any) -> set[int]:
        return set() if state.is_complete else set(self._ids)

    def step(self, state: RuntimeState, token_id: int, tokenizer: Any) -> None:
        assert isinstance(state, _TokensState)
        if state.is_complete or int(token_id) not in self._ids:
            raise StrategyError(f"token {token_id} is not one of {sorted(self._ids)}")
        state.token = int(token_id)

    def is_complete(self, state: RuntimeState) -> bool:
        return bool(state.is_complete)


class _TokensState:
    def __init__(self, ids: set[int]) -> None:
        self.ids = ids
        self.token: int | None = None

    @property
    def is_complete(self) -> bool:
        return self.token is not None

    @property
    def accepting(self) -> bool:
        return self.token is not None


def into_strategy(spec: Strategy, tokenizer: Any) -> RuntimeStrategy:
    """`spec.into_strategy(tokenizer)`: the runtime class matching the spec's kind."""
    from .sequence import SeqStrat
    from .strategy_constructor import CharsStrat, ChoicesStrat, ListStrat, UntilStrat

    kinds: dict[type[Strategy], type[RuntimeStrategy]] = {
        ChoicesStrat: ChoicesStrategy,
        UntilStrat: UntilStrategy,
        CharsStrat: CharsStrategy,
        ListStrat: ListStrategy,
        SeqStrat: RuntimeStrategy,
    }
    runtime = kinds.get(type(spec), RuntimeStrategy)._of(spec)
    runtime.compiled(tokenizer)  # compile now, as the original does: errors surface here
    return runtime
