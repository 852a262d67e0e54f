"""Building blocks shared by the strategies: option enums, character classes, a byte trie for
literals and choices, and a first-match automaton for end markers.

Data flow: strategy constructors hold only these small immutable options (`UntilEndType`,
`CharsMode`); at compile time the compiled strategies build a `ByteTrie` (for choices and fixed
literals) or an `EndMatcher` (for Until's end tag / end characters) against a `TokenIndex`, and
ask them for sparse token-id sets that they turn into cached masks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

import numpy as np

from .token_index import IntArray, TokenIndex


class UntilEndType(enum.Enum):
    """How `UntilStrat` recognises its end."""

    TAG = "tag"  # the end is an exact string (e.g. "</answer>")
    ANYCHAR = "anychar"  # the end is any one of a set of characters (e.g. ".\n")


def _ascii_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


_HEX = frozenset("0123456789abcdefABCDEF")


class CharsMode(enum.Enum):
    """Character classes for `CharsStrat`. Letters are Unicode-aware; digits are ASCII 0-9."""

    STRING = "string"  # any character except the stop's first character
    ALPHA = "alpha"  # letters (str.isalpha: "é", "日" included)
    NUMERIC = "numeric"  # ASCII digits 0-9
    ALPHANUMERIC = "alphanumeric"  # letters or ASCII digits
    LOWER = "lower"  # lowercase letters
    UPPER = "upper"  # uppercase letters
    HEX = "hex"  # 0-9 a-f A-F
    WORD = "word"  # any non-whitespace character

    def predicate(self) -> Callable[[str], bool]:
        """Per-character membership test."""
        return _PREDICATES[self]

    def all_in_class(self, text: str) -> bool:
        """Fast whole-string check (C-speed str methods for the common ASCII case)."""
        if self is CharsMode.STRING:
            return True
        if text.isascii():
            fast = _ASCII_FAST.get(self)
            if fast is not None:
                return fast(text)
        pred = _PREDICATES[self]
        return all(pred(ch) for ch in text)

    def prefix_len(self, text: str) -> int:
        """Length of the longest prefix of `text` made of class characters."""
        if self.all_in_class(text):
            return len(text)
        pred = _PREDICATES[self]
        for i, ch in enumerate(text):
            if not pred(ch):
                return i
        return len(text)


_PREDICATES: dict[CharsMode, Callable[[str], bool]] = {
    CharsMode.STRING: lambda ch: True,
    CharsMode.ALPHA: str.isalpha,
    CharsMode.NUMERIC: _ascii_digit,
    CharsMode.ALPHANUMERIC: lambda ch: ch.isalpha() or _ascii_digit(ch),
    CharsMode.LOWER: lambda ch: ch.isalpha() and ch.islower(),
    CharsMode.UPPER: lambda ch: ch.isalpha() and ch.isupper(),
    CharsMode.HEX: lambda ch: ch in _HEX,
    CharsMode.WORD: lambda ch: not ch.isspace(),
}

_ASCII_FAST: dict[CharsMode, Callable[[str], bool]] = {
    CharsMode.ALPHA: str.isalpha,
    CharsMode.NUMERIC: str.isdigit,
    CharsMode.ALPHANUMERIC: str.isalnum,
    CharsMode.LOWER: lambda s: s.isalpha() and s.islower(),
    CharsMode.UPPER: lambda s: s.isalpha() and s.isupper(),
    CharsMode.HEX: lambda s: _HEX.issuperset(s),
    CharsMode.WORD: lambda s: not s or s.split() == [s],
}


class ByteTrie:
    """A trie over the UTF-8 bytes of a few strings (choices, or one literal).

    States are node ids (ints). Why a trie: choices sharing prefixes ("yes"/"yesterday") share
    nodes, so the state after any byte prefix is one int, and the tokens allowed from a node are
    found by walking only that node's subtree against the vocabulary.
    """

    EAGER_NODES = 4096  # precompute every node's token set up to this size (cold masks stay cheap)

    def __init__(self, strings: Sequence[bytes], index: TokenIndex):
        self.index = index
        self.children: list[dict[int, int]] = [{}]
        self.terminal: list[int] = [-1]  # index of the string ending here, -1 if none
        self.prefix: list[bytes] = [b""]
        for k, s in enumerate(strings):
            node = 0
            for b in s:
                nxt = self.children[node].get(b)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][b] = nxt
                    self.children.append({})
                    self.terminal.append(-1)
                    self.prefix.append(self.prefix[node] + bytes([b]))
                node = nxt
            if self.terminal[node] < 0:
                self.terminal[node] = k
        self._ids: dict[int, IntArray] = {}
        self.live = self._compute_live()
        if len(self.children) <= self.EAGER_NODES:
            for node in range(len(self.children)):
                self.token_ids(node)

    def step(self, node: int, data: bytes) -> int | None:
        """Node after reading `data` from `node`; None when `data` leaves the trie or reaches a
        node the vocabulary cannot finish from (so steps agree with `token_ids`)."""
        children = self.children
        for b in data:
            nxt = children[node].get(b)
            if nxt is None:
                return None
            node = nxt
        return node if self.live[node] else None

    def _raw_edges(self, node: int) -> list[tuple[int, list[int]]]:
        """(descendant, token ids spelling the path to it) for every token that fits below `node`."""
        index = self.index
        out: list[tuple[int, list[int]]] = []
        stack: list[tuple[int, bytes]] = [(child, bytes([b])) for b, child in self.children[node].items()]
        while stack:
            cur, acc = stack.pop()
            ids = index.ids_of(acc)
            if ids:
                out.append((cur, ids))
            if len(acc) < index.max_len and index.has_prefix(acc):
                stack.extend((child, acc + bytes([b])) for b, child in self.children[cur].items())
        return out

    def _compute_live(self) -> list[bool]:
        """live[n]: some token sequence leads from n to the end of a string (no dead ends)."""
        n = len(self.children)
        if self._all_bytes_are_tokens():
            return [True] * n  # byte-level vocabularies can always spell the rest byte by byte
        live = [False] * n
        # Children have larger ids than their parents, so reverse id order is bottom-up.
        for node in range(n - 1, -1, -1):
            live[node] = self.terminal[node] >= 0 or any(live[d] for d, _ in self._raw_edges(node))
        return live

    def _all_bytes_are_tokens(self) -> bool:
        used = {b for node in self.children for b in node}
        return all(self.index.ids_of(bytes([b])) for b in used)

    def token_ids(self, node: int) -> IntArray:
        """Ids of tokens that can be emitted from `node` without leaving the trie or dead-ending."""
        hit = self._ids.get(node)
        if hit is None:
            ids = sorted({i for d, ids in self._raw_edges(node) if self.live[d] for i in ids})
            hit = np.asarray(ids, dtype=np.int64)
            self._ids[node] = hit
        return hit

    def forced(self, node: int) -> bytes | None:
        """Bytes that must come next from `node`: the path up to the next choice point (a branch
        or the end of a string), or None when `node` itself is a choice point."""
        cur = node
        while self.terminal[cur] < 0 and len(self.children[cur]) == 1:
            cur = next(iter(self.children[cur].values()))
        if cur == node:
            return None
        return self.prefix[cur][len(self.prefix[node]) :]


class EndMatcher:
    """Finds the first occurrence of any of a few byte patterns (Aho-Corasick over few states).

    State = index of the longest suffix of the text that is a proper prefix of a pattern. A token is
    *bad* from a state if a pattern completes before the token's last byte (that would overshoot);
    only tokens starting with a pattern's proper suffix, or containing a pattern, can ever be bad,
    so those few candidates are simulated once per state at compile time.
    """

    MATCH = -1

    def __init__(self, patterns: Sequence[bytes], index: TokenIndex):
        self.patterns = tuple(dict.fromkeys(p for p in patterns if p))
        prefixes = {b""} | {p[:k] for p in self.patterns for k in range(1, len(p))}
        self.states: list[bytes] = sorted(prefixes, key=lambda s: (len(s), s))
        self._state_of = {s: k for k, s in enumerate(self.states)}
        self.table: list[list[int]] = [[self._delta(s, b) for b in range(256)] for s in self.states]
        self.match_len: dict[tuple[int, int], int] = {}
        for k, s in enumerate(self.states):
            for b in range(256):
                if self.table[k][b] == self.MATCH:
                    text = s + bytes([b])
                    self.match_len[(k, b)] = max(len(p) for p in self.patterns if text.endswith(p))
        self.bad_ids: list[IntArray] = self._bad_ids(index)

    def _delta(self, state: bytes, byte: int) -> int:
        text = state + bytes([byte])
        if any(text.endswith(p) for p in self.patterns):
            return self.MATCH
        for start in range(len(text) + 1):
            k = self._state_of.get(text[start:])
            if k is not None:
                return k
        return 0

    def run(self, state: int, data: bytes) -> tuple[int, int]:
        """(new state, -1) if no pattern completes; (MATCH, matched length) if one completes at the
        last byte; (MATCH, 0) if one completes earlier (the token overshoots the end)."""
        table = self.table
        last = len(data) - 1
        for i, b in enumerate(data):
            nxt = table[state][b]
            if nxt == self.MATCH:
                return (self.MATCH, self.match_len[(state, b)] if i == last else 0)
            state = nxt
        return (state, -1)

    def _bad_ids(self, index: TokenIndex) -> list[IntArray]:
        cand: set[int] = set()
        for p in self.patterns:
            cand.update(index.ids_containing(p).tolist())
            for j in range(1, len(p)):
                cand.update(index.ids_with_prefix(p[j:]).tolist())
        ordered = sorted(cand)
        out: list[IntArray] = []
        for k in range(len(self.states)):
            bad = [t for t in ordered if self.run(k, index.token_bytes[t]) == (self.MATCH, 0)]
            out.append(np.asarray(bad, dtype=np.int64))
        return out


_RUNTIME_NAMES = ("ChoicesStrategy", "UntilStrategy", "CharsStrategy", "TokensStrategy", "TrieNode")


def __getattr__(name: str) -> object:
    """The original SDK's runtime classes under their original module (`runtime.py` holds them)."""
    if name in _RUNTIME_NAMES:
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
