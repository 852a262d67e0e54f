"""Compiled `CharsStrat`: characters of one class, then an optional stop string.

Data flow: states are tuples
    (CHARS, count, partial)   `count` class characters so far; `partial` = bytes of a character
                              split across tokens (b"" at a character boundary)
    (STOP, count, node)       inside the stop literal (a one-string `ByteTrie`; forced text)
    (DONE, count, stop_len)   finished (stop emitted, or max_chars reached with stop_len 0)
At compile time every token is scanned once from a character boundary, giving per-token arrays
(how many class characters it adds, whether it ends inside a character, whether it enters the
stop). The mask for a count is then a few vectorised comparisons against the remaining budget,
cached per clamped (remaining, still-needed) pair; states in the middle of a character scan only
the tokens that start with a continuation byte.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .base import CompiledStrategy, StrategyError
from .primitives import ByteTrie, CharsMode
from .token_index import UTF8_NEED, BoolArray, TokenIndex, split_utf8_tail

if TYPE_CHECKING:
    from .strategy_constructor import CharsStrat

CHARS, STOP, DONE = 0, 1, 2
State = tuple[int, int, object]
# Superset of each sparse class among non-ASCII characters (a regex finds them at C speed).
_CANDIDATES: dict[CharsMode, re.Pattern[str]] = {
    CharsMode.ALPHA: re.compile(r"[^\W\d_]"),
    CharsMode.ALPHANUMERIC: re.compile(r"[^\W\d_]"),
    CharsMode.LOWER: re.compile(r"[^\W\d_]"),
    CharsMode.UPPER: re.compile(r"[^\W\d_]"),
    CharsMode.NUMERIC: re.compile(r"[0-9]"),
    CharsMode.HEX: re.compile(r"[0-9a-fA-F]"),
}


@functools.cache
def _class_points(mode: CharsMode) -> npt.NDArray[np.int32]:
    """Sorted non-ASCII code points of a sparse class (built once per process, ~0.1 s).

    Why: deciding whether a split character (e.g. a lone 4-byte lead) can still become a class
    character needs "any class member in this code point range", answered by one bisect.
    """
    if mode in (CharsMode.NUMERIC, CharsMode.HEX):
        return np.zeros(0, dtype=np.int32)  # ASCII-only classes
    every = "".join(map(chr, itertools.chain(range(0x80, 0xD800), range(0xE000, 0x110000))))
    pred = mode.predicate()
    found = [ord(m.group()) for m in _CANDIDATES[mode].finditer(every) if pred(m.group())]
    return np.asarray(found, dtype=np.int32)


@dataclass(frozen=True)
class _Scan:
    """What one token does from a given character state, before any budget check."""

    n_chars: int  # class characters completed
    tail: bytes = b""  # trailing bytes of an unfinished character
    tail_class: bool = False  # that character can still become a class character
    tail_stop: bool = False  # ...or the start of the stop
    stop_node: int = -1  # >= 0: the token entered the stop literal (node in the stop trie)


class CompiledChars(CompiledStrategy):
    """Class characters (budgeted by min/max) followed by the stop literal."""

    def __init__(self, strategy: CharsStrat, index: TokenIndex):
        super().__init__(strategy, index)
        self.mode: CharsMode = strategy.mode
        self.stop = strategy.stop or ""
        self.stop_bytes = self.stop.encode("utf-8")
        self.min_chars = strategy.min_chars
        self.max_chars = strategy.max_chars
        self.stop_trie = ByteTrie([self.stop_bytes], index) if self.stop_bytes else None
        if self.stop_bytes and index.tokenize_literal(self.stop_bytes) is None:
            raise StrategyError(f"the tokenizer cannot spell the stop {self.stop!r}")
        self._viable: dict[bytes, bool] = {}
        self._features()

    # --- scanning -------------------------------------------------------------------------------
    def _class_prefix(self, text: str) -> int:
        if self.mode is CharsMode.STRING:
            cut = text.find(self.stop[0]) if self.stop else -1
            return len(text) if cut < 0 else cut
        return self.mode.prefix_len(text)

    def _in_class(self, ch: str) -> bool:
        if self.mode is CharsMode.STRING:
            return not self.stop or ch != self.stop[0]
        return self.mode.predicate()(ch)

    def _viable_class(self, tail: bytes) -> bool:
        """Some completion of the unfinished character `tail` is a class character."""
        hit = self._viable.get(tail)
        if hit is None:
            hit = self._compute_viable(tail)
            self._viable[tail] = hit
        return hit

    def _compute_viable(self, tail: bytes) -> bool:
        size = UTF8_NEED[tail[0]] + 1
        missing = size - len(tail)
        try:
            lo = ord((tail + b"\x80" * missing).decode("utf-8"))
            hi = ord((tail + b"\xbf" * missing).decode("utf-8"))
        except UnicodeDecodeError:
            lo, hi = _loose_range(tail, missing)
        if lo > hi:
            return False
        return self._any_in_class(lo, hi)

    def _any_in_class(self, lo: int, hi: int) -> bool:
        """Whether a class character lies in [lo, hi] (non-ASCII code points)."""
        if self.mode in (CharsMode.STRING, CharsMode.WORD):  # dense classes: the first few hit
            return any(self._in_class(chr(cp)) for cp in range(lo, hi + 1) if not 0xD800 <= cp <= 0xDFFF)
        points = _class_points(self.mode)
        k = int(np.searchsorted(points, lo))
        return k < len(points) and int(points[k]) <= hi

    def _scan(self, partial: bytes, data: bytes) -> _Scan | None:
        """Read `data` after the unfinished character `partial`, ignoring min/max budgets."""
        body, tail = split_utf8_tail(partial + data)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        i = self._class_prefix(text)
        if i == len(text):
            if not tail:
                return _Scan(i)
            if UTF8_NEED[tail[0]] < 0 or any(UTF8_NEED[b] != -2 for b in tail[1:]):
                return None
            tail_class = self._viable_class(tail)
            tail_stop = self.stop_bytes.startswith(tail) if self.stop_bytes else False
            if not (tail_class or tail_stop):
                return None
            return _Scan(i, tail, tail_class, tail_stop)
        if self.stop_trie is None:
            return None
        node = self.stop_trie.step(0, text[i:].encode("utf-8") + tail)
        return None if node is None else _Scan(i, stop_node=node)

    def _apply(self, count: int, scan: _Scan | None) -> State | None:
        """The state after a scan, enforcing min_chars/max_chars."""
        if scan is None:
            return None
        n = count + scan.n_chars
        cap = self.max_chars
        if cap is not None and n > cap:
            return None
        if scan.stop_node >= 0:
            if n < self.min_chars:
                return None
            assert self.stop_trie is not None
            if self.stop_trie.terminal[scan.stop_node] >= 0:
                return (DONE, n, len(self.stop_bytes))
            return (STOP, n, scan.stop_node)
        if scan.tail:
            as_class = scan.tail_class and (cap is None or n + 1 <= cap)
            as_stop = scan.tail_stop and n >= self.min_chars
            return (CHARS, n, scan.tail) if as_class or as_stop else None
        if cap is not None and n == cap:
            return (DONE, n, 0)
        return (CHARS, n, b"")

    # --- per-token features (boundary state) ----------------------------------------------------
    def _features(self) -> None:
        """Scan every token once from a character boundary (the expensive, cached part).

        Pure-ASCII tokens are scanned with one lookup-table gather; the rest go through `_scan`.
        """
        size = self.index.vocab_size
        n = np.zeros(size, dtype=np.uint16)
        plain = np.zeros(size, dtype=np.bool_)
        tail_class = np.zeros(size, dtype=np.bool_)
        needs_min = np.zeros(size, dtype=np.bool_)
        ascii_ids, table, lengths = self.index.ascii_table
        lut = np.zeros(256, dtype=np.bool_)
        lut[:128] = [self._in_class(chr(b)) for b in range(128)]
        prefix = np.minimum(lut[table].argmin(axis=1), lengths)  # padding (0x80) is never in class
        whole = prefix == lengths
        n[ascii_ids] = np.minimum(prefix, 0xFFFF)
        plain[ascii_ids[whole]] = True
        if self.stop_bytes:
            rows = np.flatnonzero(~whole & (table[np.arange(len(ascii_ids)), prefix] == self.stop_bytes[0]))
            for row in rows.tolist():
                tid = int(ascii_ids[row])
                needs_min[tid] = self.stop_bytes.startswith(self.index.token_bytes[tid][prefix[row] :])
        done = np.zeros(size, dtype=np.bool_)
        done[ascii_ids] = True
        for tid in np.flatnonzero(~done & self.index.usable).tolist():
            data = self.index.token_bytes[tid]
            scan = None if UTF8_NEED[data[0]] == -2 else self._scan(b"", data)
            if scan is None:
                continue
            n[tid] = min(scan.n_chars, 0xFFFF)
            needs_min[tid] = scan.stop_node >= 0 or scan.tail_stop
            tail_class[tid] = scan.tail_class
            plain[tid] = not scan.tail and scan.stop_node < 0
        self._n = n
        self._plain = plain
        self._tail_class = tail_class
        self._needs_min = needs_min
        self._clamp = int(n.max(initial=0)) + 2
        self._at_most_cache: dict[int, BoolArray] = {}

    def _at_most(self, limit: int) -> BoolArray:
        """Tokens adding at most `limit` characters (cached per limit: one compare, then reused)."""
        hit = self._at_most_cache.get(limit)
        if hit is None:
            hit = self._n <= limit if limit >= 0 else np.zeros(self._n.size, dtype=np.bool_)
            self._at_most_cache[limit] = hit
        return hit

    def _boundary_mask(self, remaining: int | None, needed: int) -> BoolArray:
        """Mask at a character boundary given the budget left and the characters still required."""
        stop_ok = self._needs_min & ~self._at_most(needed - 1) if needed else self._needs_min
        base = self._plain | stop_ok
        if remaining is None:
            return base | self._tail_class
        return (base & self._at_most(remaining)) | (self._tail_class & self._at_most(remaining - 1))

    # --- state machine --------------------------------------------------------------------------
    def initial_state(self) -> State:
        if self.max_chars == 0:
            return (DONE, 0, 0)
        return (CHARS, 0, b"")

    def step(self, state: State, data: bytes) -> State | None:
        phase, count, extra = state
        if phase == CHARS:
            assert isinstance(extra, bytes)
            return self._apply(count, self._scan(extra, data))
        if phase == STOP:
            assert self.stop_trie is not None and isinstance(extra, int)
            node = self.stop_trie.step(extra, data)
            if node is None:
                return None
            if self.stop_trie.terminal[node] >= 0:
                return (DONE, count, len(self.stop_bytes))
            return (STOP, count, node)
        return None

    def _budget(self, count: int) -> tuple[int | None, int]:
        """(remaining, still needed), clamped so that equivalent counts share a cache entry."""
        remaining = None if self.max_chars is None else min(self.max_chars - count, self._clamp)
        return remaining, min(max(self.min_chars - count, 0), self._clamp)

    def mask_key(self, state: State) -> Hashable:
        phase, count, extra = state
        if phase == CHARS:
            return (CHARS, extra, *self._budget(count))
        if phase == STOP:
            return (STOP, extra)
        return (DONE,)

    def compute_mask(self, state: State) -> BoolArray:
        phase, count, extra = state
        if phase == CHARS and extra == b"":
            return self._boundary_mask(*self._budget(count))
        if phase == CHARS:
            ids = [
                t
                for t in self.index.continuation_ids.tolist()
                if self.step(state, self.index.token_bytes[t]) is not None
            ]
            return self.mask_from_ids(ids)
        if phase == STOP:
            assert self.stop_trie is not None and isinstance(extra, int)
            return self.mask_from_ids(self.stop_trie.token_ids(extra))
        return self._empty.copy()

    def is_accepting(self, state: State) -> bool:
        phase, count, extra = state
        if phase == DONE:
            return True
        return phase == CHARS and not self.stop and extra == b"" and count >= self.min_chars

    def is_complete(self, state: State) -> bool:
        return state[0] == DONE

    def forced_bytes(self, state: State) -> bytes | None:
        if state[0] == STOP and self.stop_trie is not None:
            assert isinstance(state[2], int)
            return self.stop_trie.forced(state[2])
        return None

    def answer_of(self, state: State, data: bytes) -> str:
        """The class characters (the stop excluded)."""
        phase, _, extra = state
        if phase == DONE:
            assert isinstance(extra, int)
            data = data[: len(data) - extra]
        elif phase == STOP:
            assert self.stop_trie is not None and isinstance(extra, int)
            data = data[: len(data) - len(self.stop_trie.prefix[extra])]
        return data.decode("utf-8", "replace")


def _loose_range(tail: bytes, missing: int) -> tuple[int, int]:
    """Code point range of a structurally valid but strictly-invalid prefix (e.g. E0 80)."""
    size = len(tail) + missing
    lead_bits = {2: 0x1F, 3: 0x0F, 4: 0x07}[size]
    value = tail[0] & lead_bits
    for b in tail[1:]:
        value = (value << 6) | (b & 0x3F)
    lo = value << (6 * missing)
    hi = lo | ((1 << (6 * missing)) - 1)
    floor = {2: 0x80, 3: 0x800, 4: 0x10000}[size]
    return max(lo, floor), min(hi, 0x10FFFF)
