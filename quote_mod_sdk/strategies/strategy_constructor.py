"""The strategies mod authors construct: `ChoicesStrat`, `UntilStrat`, `CharsStrat`, `ListStrat`.

Data flow: each is an immutable, hashable value that validates its options on construction and
knows which compiled class to build; `strategy.compile(tokenizer)` (see `base.Strategy`) builds it
once per tokenizer and caches it, and `compiled.start()` gives the per-request `StrategyRun`.

    ChoicesStrat(["yes", "no"])
    UntilStrat("<question_to_user>", UntilEndType.TAG, "</question_to_user>")
    CharsStrat(CharsMode.NUMERIC, stop="\\n", min_chars=1, max_chars=4)
    ListStrat(ChoicesStrat(["red", "green"]), separator=", ", open="[", close="]")
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .base import CompiledStrategy, Strategy
from .primitives import CharsMode, UntilEndType
from .token_index import TokenIndex


@runtime_checkable
class StrategyConstructor(Protocol):
    """What `SelfPrompt` and `FlowQuestion` take as `strategy=` besides our strategies (which are
    constructors too): `into_strategy(tokenizer)` builds a runtime-protocol strategy (the
    original SDK's extension point; see `custom.py`)."""

    def into_strategy(self, tokenizer: Any) -> Any: ...


@dataclass(frozen=True, init=False)
class ChoicesStrat(Strategy):
    """Exactly one of `choices` (they may share prefixes, e.g. "A" and "AB")."""

    choices: tuple[str, ...]

    def __init__(self, choices: Iterable[str]) -> None:
        values = tuple(choices) if not isinstance(choices, str) else (choices,)
        if not values:
            raise ValueError("ChoicesStrat needs at least one choice")
        if any(not isinstance(c, str) or not c for c in values):
            raise ValueError(f"choices must be non-empty strings, got {values!r}")
        object.__setattr__(self, "choices", tuple(dict.fromkeys(values)))

    def _build(self, index: TokenIndex) -> CompiledStrategy:
        from .choices import CompiledChoices

        return CompiledChoices(self, index)


@dataclass(frozen=True, init=False)
class UntilStrat(Strategy):
    """The literal `start` (forced), then free text until `end`.

    TAG: `end` is an exact string; ANYCHAR: `end` is a set of characters and the first of any of
    them ends the text. The answer is the text in between (start and end excluded).
    """

    start: str
    end_type: UntilEndType
    end: str

    def __init__(self, start: str, end_type: UntilEndType, end: str) -> None:
        if not isinstance(end_type, UntilEndType):
            raise ValueError(f"end_type must be an UntilEndType, got {end_type!r}")
        if not end:
            raise ValueError("UntilStrat needs a non-empty end (tag or set of characters)")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end_type", end_type)
        object.__setattr__(self, "end", end)

    def _build(self, index: TokenIndex) -> CompiledStrategy:
        from .until import CompiledUntil

        return CompiledUntil(self, index)


@dataclass(frozen=True, init=False)
class CharsStrat(Strategy):
    """Characters of `mode`'s class, ended by `stop` (excluded from the answer) or `max_chars`.

    `stop=None` (or "") means no stop: the run is accepting once `min_chars` characters were
    emitted. The stop's first character must lie outside the class, so a stop is never ambiguous
    with the text (for free text up to a multi-character tag use `UntilStrat`).
    """

    mode: CharsMode
    stop: str | None
    min_chars: int
    max_chars: int | None

    def __init__(
        self,
        mode: CharsMode,
        stop: str | int | None = "\n",
        min_chars: int = 0,
        max_chars: int | None = None,
        *,
        min: int | None = None,
    ) -> None:
        # The original SDK's spellings: `min=` for min_chars, an int `stop` for max_chars.
        if min is not None:
            min_chars = min
        if isinstance(stop, int) and not isinstance(stop, bool):
            if max_chars is not None:
                raise ValueError("give the length limit once: an int stop or max_chars")
            stop, max_chars = None, stop
        if not isinstance(stop, (str, type(None))):
            raise ValueError(f"stop must be a string, an int or None, got {stop!r}")
        if not isinstance(mode, CharsMode):
            raise ValueError(f"mode must be a CharsMode, got {mode!r}")
        if min_chars < 0 or (max_chars is not None and max_chars < min_chars):
            raise ValueError(f"need 0 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
        if stop and mode is not CharsMode.STRING and mode.predicate()(stop[0]):
            raise ValueError(f"the stop {stop!r} starts with a {mode.name} character: it would be ambiguous")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "stop", stop or None)
        object.__setattr__(self, "min_chars", min_chars)
        object.__setattr__(self, "max_chars", max_chars)

    def _build(self, index: TokenIndex) -> CompiledStrategy:
        from .chars import CompiledChars

        return CompiledChars(self, index)


@dataclass(frozen=True, init=False)
class ListStrat(Strategy):
    """`open`, then between `min_items` and `max_items` items separated by `separator`, then `close`.

    The answer is the list of the items' answers. Items are non-empty. When an item could either
    continue or end, both readings are kept until a token decides.
    """

    item: Strategy
    separator: str
    open: str
    close: str
    min_items: int
    max_items: int | None
    items: tuple[Strategy, ...]
    wrap: str
    end_with: str

    def __init__(
        self,
        item: Strategy | Sequence[Strategy] | None = None,
        separator: str = ", ",
        open: str | None = "",
        close: str | None = "",
        min_items: int | None = None,
        max_items: int | None = None,
        *,
        elements: Strategy | Sequence[Strategy] | None = None,
        sep: str | None = None,
        min: int | None = None,
        max: int | None = None,
        wrap: str | None = "",
        end_with: str | None = "",
    ) -> None:
        # The original SDK's spellings: elements=, sep=, min=, max= (min defaults to 0 there).
        if elements is not None:
            if item is not None:
                raise ValueError("give the element strategy once: item or elements")
            item = elements
            if min_items is None and min is None:
                min_items = 0
        if sep is not None:
            separator = sep
        if min is not None:
            min_items = min
        if max is not None:
            max_items = max
        if min_items is None:
            min_items = 1
        fixed: tuple[Strategy, ...] = ()
        if isinstance(item, (list, tuple)):
            # A fixed list: exactly these elements, in order (min and max are its length).
            fixed = tuple(item)
            if not fixed or not all(isinstance(e, Strategy) for e in fixed):
                raise ValueError(f"elements must be strategies, got {item!r}")
            item, min_items, max_items = fixed[0], len(fixed), len(fixed)
        if not isinstance(item, Strategy):
            raise ValueError(f"item must be a Strategy, got {item!r}")
        if min_items < 0 or (max_items is not None and max_items < builtins.max(min_items, 1)):
            raise ValueError(f"need 0 <= min_items <= max_items and max_items >= 1, got {min_items}, {max_items}")
        if separator and separator == close:
            raise ValueError("separator and close must differ (the list could never end)")
        object.__setattr__(self, "item", item)
        object.__setattr__(self, "separator", separator)
        object.__setattr__(self, "open", open or "")
        object.__setattr__(self, "close", close or "")
        object.__setattr__(self, "min_items", min_items)
        object.__setattr__(self, "max_items", max_items)
        object.__setattr__(self, "items", fixed)
        object.__setattr__(self, "wrap", wrap or "")
        object.__setattr__(self, "end_with", end_with or "")

    def _build(self, index: TokenIndex) -> CompiledStrategy:
        from .lists import CompiledList
        from .sequence import SeqStrat

        if self.end_with:
            # The list, then the literal `end_with`; the answer stays the list's.
            inner = object.__new__(ListStrat)
            for f in dataclasses.fields(self):
                object.__setattr__(inner, f.name, getattr(self, f.name))
            object.__setattr__(inner, "end_with", "")
            return SeqStrat((inner, self.end_with)).compile(index)
        return CompiledList(self, index)

    def element_strategies(self) -> tuple[Strategy, ...]:
        """What each element is (wrapped in `wrap` when set): one entry, or the fixed list."""
        from .sequence import SeqStrat

        elems = self.items or (self.item,)
        if self.wrap:
            return tuple(SeqStrat((self.wrap, e, self.wrap)) for e in elems)
        return elems
