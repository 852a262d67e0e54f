"""Compiled `ListStrat`: open literal, items separated by a separator, close literal.

Data flow: the state is a small tuple of *threads* (an NFA simulation), each one of
    (OPEN, node, 0, b"", ())                      inside the open literal
    (ITEM, item_state, count, item_bytes, items)  inside an item (any compiled strategy)
    (JOIN, (variant, node), count, b"", items)    inside the separator or the close literal
    (DONE, None, count, b"", items)               finished
Threads exist because an item may be complete-but-continuable ("A" vs "AB") or a separator may be a
prefix of the close ("\\n" vs "\\n\\n"): each reading is kept until a token rules it out. Threads
are deduplicated by what their future depends on (so there are few), ordered by priority (item
continuation first). The mask is the union of the threads' masks, cached per tuple of thread keys;
with one item thread it is the item's own cached mask. Tokens never straddle an item and a literal.
"""

from __future__ import annotations

import builtins
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import CompiledStrategy, StrategyError, normalize_threads
from .primitives import ByteTrie
from .token_index import BoolArray, TokenIndex

if TYPE_CHECKING:
    from .strategy_constructor import ListStrat

OPEN, ITEM, JOIN, DONE = 0, 1, 2, 3
SEP, CLOSE = 0, 1
Thread = tuple[int, Any, int, bytes, tuple[Any, ...]]
ListState = tuple[Thread, ...]


class CompiledList(CompiledStrategy):
    """Items of one compiled strategy between literals."""

    def __init__(self, strategy: ListStrat, index: TokenIndex):
        super().__init__(strategy, index)
        self.elements: list[CompiledStrategy] = [e.compile(index) for e in strategy.element_strategies()]
        self.item: CompiledStrategy = self.elements[0]
        self.sep = strategy.separator.encode("utf-8")
        self.open = strategy.open.encode("utf-8")
        self.close = strategy.close.encode("utf-8")
        self.min_items = strategy.min_items
        self.max_items = strategy.max_items
        for literal in (self.sep, self.open, self.close):
            if literal and index.tokenize_literal(literal) is None:
                raise StrategyError(f"the tokenizer cannot spell {literal.decode('utf-8')!r}")
        self.open_trie = ByteTrie([self.open], index) if self.open else None
        # JOIN tries by variant (separator allowed, close allowed), with what each terminal means.
        self.join_tries: dict[tuple[bool, bool], ByteTrie] = {}
        self.join_labels: dict[tuple[bool, bool], list[int]] = {}
        for sep_ok in (False, True):
            for close_ok in (False, True):
                options = [(k, o) for k, o in ((SEP, self.sep), (CLOSE, self.close)) if o]
                options = [(k, o) for k, o in options if (sep_ok if k == SEP else close_ok)]
                if options:
                    self.join_tries[(sep_ok, close_ok)] = ByteTrie([o for _, o in options], index)
                    self.join_labels[(sep_ok, close_ok)] = [k for k, _ in options]
        self._count_cap = max(self.min_items, self.max_items or 0) + 1

    # --- threads --------------------------------------------------------------------------------
    def _item_at(self, count: int) -> CompiledStrategy:
        """The element strategy for the `count`-th element (fixed lists differ per position)."""
        return self.elements[builtins.min(count, len(self.elements) - 1)]

    def _new_item(self, count: int, items: tuple[Any, ...]) -> Thread:
        return (ITEM, self._item_at(count).initial_state(), count, b"", items)

    def _between(self, count: int, items: tuple[Any, ...], first: bool) -> list[Thread]:
        """Threads right after the open literal (`first`) or after the `count`-th item."""
        out: list[Thread] = []
        room = self.max_items is None or count < self.max_items
        if first and room:
            out.append(self._new_item(count, items))
        sep_ok = not first and room
        close_ok = count >= self.min_items
        if sep_ok and not self.sep:
            out.append(self._new_item(count, items))
        if close_ok and not self.close:
            out.append((DONE, None, count, b"", items))
        variant = (sep_ok and bool(self.sep), close_ok and bool(self.close))
        if any(variant):
            out.append((JOIN, (variant, 0), count, b"", items))
        return out

    def _expand(self, thread: Thread) -> tuple[bool, list[Thread]]:
        """Epsilon moves: (whether the thread itself stays, threads it also becomes now that a
        literal or an item has ended)."""
        phase, sub, count, buf, items = thread
        if phase == OPEN:
            assert self.open_trie is not None
            if self.open_trie.terminal[sub] >= 0:
                return False, self._between(0, items, first=True)
            return True, []
        if phase == ITEM:
            item = self._item_at(count)
            stays = not item.is_complete(sub)
            if buf and item.is_accepting(sub):
                done = (*items, item.answer_of(sub, buf))
                return stays, self._between(count + 1, done, first=False)
            return stays, []
        if phase == JOIN:
            variant, node = sub
            trie = self.join_tries[variant]
            term = trie.terminal[node]
            which = self.join_labels[variant][term] if term >= 0 else -1
            if which == SEP:
                return bool(trie.children[node]), [self._new_item(count, items)]
            if which == CLOSE:
                return bool(trie.children[node]), [(DONE, None, count, b"", items)]
            return True, []
        return True, []

    def _step_thread(self, thread: Thread, data: bytes) -> Thread | None:
        phase, sub, count, buf, items = thread
        if phase == OPEN:
            assert self.open_trie is not None
            node = self.open_trie.step(sub, data)
            return None if node is None else (OPEN, node, count, buf, items)
        if phase == ITEM:
            st = self._item_at(count).step(sub, data)
            return None if st is None else (ITEM, st, count, buf + data, items)
        if phase == JOIN:
            variant, node = sub
            nxt = self.join_tries[variant].step(node, data)
            return None if nxt is None else (JOIN, (variant, nxt), count, buf, items)
        return None

    def _thread_key(self, thread: Thread) -> Hashable:
        phase, sub, count, _, _ = thread
        clamped = min(count, self._count_cap)
        if phase == ITEM:
            return (ITEM, self._item_at(count).mask_key(sub), clamped)
        if phase == DONE:
            return (DONE,)
        return (phase, sub, clamped)

    def _normalize(self, threads: list[Thread]) -> ListState:
        """Expand to a fixed point, keeping the first (highest-priority) thread per key."""
        return normalize_threads(threads, self._expand, self._thread_key)

    # --- state machine --------------------------------------------------------------------------
    def initial_state(self) -> ListState:
        if self.open_trie is not None:
            return self._normalize([(OPEN, 0, 0, b"", ())])
        return self._normalize(self._between(0, (), first=True))

    def step(self, state: ListState, data: bytes) -> ListState | None:
        moved = [t for t in (self._step_thread(th, data) for th in state) if t is not None]
        if not moved:
            return None
        return self._normalize(moved) or None

    def mask_key(self, state: ListState) -> Hashable:
        return tuple(self._thread_key(t) for t in state)

    def mask(self, state: ListState) -> BoolArray:
        if len(state) == 1 and state[0][0] == ITEM:
            return self._item_at(state[0][2]).mask(state[0][1])  # the item's own cache: no copy, no second entry
        return super().mask(state)

    def _thread_mask(self, thread: Thread) -> BoolArray | None:
        phase, sub, count, _, _ = thread
        if phase == ITEM:
            return self._item_at(count).mask(sub)
        if phase == OPEN:
            assert self.open_trie is not None
            return self.mask_from_ids(self.open_trie.token_ids(sub))
        if phase == JOIN:
            variant, node = sub
            return self.mask_from_ids(self.join_tries[variant].token_ids(node))
        return None

    def compute_mask(self, state: ListState) -> BoolArray:
        masks = [m for m in (self._thread_mask(t) for t in state) if m is not None]
        if not masks:
            return self._empty.copy()
        out = masks[0].copy()
        for m in masks[1:]:
            np.logical_or(out, m, out=out)
        return out

    def is_accepting(self, state: ListState) -> bool:
        return any(t[0] == DONE for t in state)

    def is_complete(self, state: ListState) -> bool:
        return bool(state) and all(t[0] == DONE for t in state)

    def forced_bytes(self, state: ListState) -> bytes | None:
        if len(state) != 1:
            return None
        phase, sub, count, _, _ = state[0]
        if phase == OPEN:
            assert self.open_trie is not None
            return self.open_trie.forced(sub)
        if phase == JOIN:
            variant, node = sub
            return self.join_tries[variant].forced(node)
        if phase == ITEM:
            return self._item_at(count).forced_bytes(sub)
        return None

    def answer_of(self, state: ListState, data: bytes) -> list[Any]:
        """Answers of the completed items (of the finished reading when there is one)."""
        if not state:
            return []
        done = [t for t in state if t[0] == DONE]
        return list((done[0] if done else state[0])[4])
