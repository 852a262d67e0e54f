"""The bytes of every token of a tokenizer, indexed for fast constrained decoding.

Data flow: a tokenizer (HF fast/slow tokenizer, a raw `tokenizers.Tokenizer`, or anything with
`encode`/`decode`) goes in once; `TokenIndex.of(tokenizer)` reads its vocabulary, turns every token
id into the exact bytes it appends to the text, and keeps the result cached per tokenizer object.
Strategies then query the index at compile time (which tokens are a prefix of this literal, which
start with these bytes, which contain them, how each token changes a UTF-8 decoder's state) and
build their masks from those answers, so nothing at mask time loops over the vocabulary.

Why bytes: tokens are byte strings; a multi-byte UTF-8 character is often split across tokens, so
all matching is done on bytes and text is only decoded for display.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_T = TypeVar("_T")


def _utf8_need(b: int) -> int:
    """Continuation bytes a byte opens (0 for ASCII); -2 for a continuation byte; -1 for bytes that
    never appear in UTF-8 (C0, C1, F5..FF)."""
    if b < 0x80:
        return 0
    if b < 0xC0:
        return -2
    if b < 0xC2 or b >= 0xF5:
        return -1
    return 1 if b < 0xE0 else 2 if b < 0xF0 else 3


UTF8_NEED: tuple[int, ...] = tuple(_utf8_need(b) for b in range(256))
UTF8_STATES = 8


def _utf8_table() -> tuple[tuple[int, ...], ...]:
    """Strict UTF-8 decoder: next state for (state, byte), -1 if invalid.

    States: 0 at a character boundary; 1..3 that many continuation bytes owed (any 80..BF); 4..7
    the byte after E0 / ED / F0 / F4, whose range is narrower (no overlongs, surrogates, > U+10FFFF).
    """
    cont = {1: (0x80, 0xBF, 0), 2: (0x80, 0xBF, 1), 3: (0x80, 0xBF, 2), 4: (0xA0, 0xBF, 1)}
    cont |= {5: (0x80, 0x9F, 1), 6: (0x90, 0xBF, 2), 7: (0x80, 0x8F, 2)}
    lead = {0xE0: 4, 0xED: 5, 0xF0: 6, 0xF4: 7}
    rows: list[tuple[int, ...]] = []
    for state in range(UTF8_STATES):
        row = []
        for b in range(256):
            if state:
                lo, hi, nxt = cont[state]
                row.append(nxt if lo <= b <= hi else -1)
            elif UTF8_NEED[b] < 0:  # continuation byte or never-valid byte at a boundary
                row.append(-1)
            else:  # ASCII -> 0, other lead bytes -> bytes owed (or the narrower state 4..7)
                row.append(lead.get(b, UTF8_NEED[b]))
        rows.append(tuple(row))
    return tuple(rows)


_UTF8_NEXT = _utf8_table()


def utf8_advance(state: int, data: bytes) -> int:
    """Strict UTF-8 decoder state after `data` (0 = at a character boundary), or -1 if invalid.

    Why a small state and not the decoded text: it is all a mask needs (which bytes may come next),
    and per-state token tables (`TokenIndex.utf8_ok`) make that mask a precomputed array.
    """
    if state == 0 and data.isascii():
        return 0
    table = _UTF8_NEXT
    for b in data:
        state = table[state][b]
        if state < 0:
            return -1
    return state


def split_utf8_tail(buf: bytes) -> tuple[bytes, bytes]:
    """(complete part, trailing bytes of an unfinished character)."""
    n = len(buf)
    for back in range(1, min(4, n) + 1):
        need = UTF8_NEED[buf[n - back]]
        if need == -2:
            continue
        return (buf[: n - back], buf[n - back :]) if need >= back else (buf, b"")
    return buf, b""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by ByteLevel BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


_BYTE_DECODER: dict[str, int] = {c: b for b, c in bytes_to_unicode().items()}
_SP_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _successor(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string starting with `prefix` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class TokenIndex:
    """Exact bytes of every token id plus the lookups strategies compile against.

    `token_bytes[i]` is b"" for special tokens and for ids whose bytes cannot be known; such ids are
    never allowed by any strategy. Build it with `TokenIndex.of(tokenizer)` (cached per object).
    """

    def __init__(self, token_bytes: Sequence[bytes], special_ids: Iterable[int], tokenizer: Any = None):
        self.vocab_size: int = len(token_bytes)
        special = {i for i in special_ids if 0 <= i < self.vocab_size}
        self.token_bytes: list[bytes] = [b"" if i in special else b for i, b in enumerate(token_bytes)]
        self.special_ids: frozenset[int] = frozenset(special)
        self._tokenizer_ref: Callable[[], Any] | None = _weak_or_strong(tokenizer)
        self._by_bytes: dict[bytes, list[int]] = {}
        for i, b in enumerate(self.token_bytes):
            if b:
                self._by_bytes.setdefault(b, []).append(i)
        order = sorted(self._by_bytes)
        self._sorted_bytes: list[bytes] = order
        self._sorted_groups: list[list[int]] = [self._by_bytes[b] for b in order]
        flat = [i for group in self._sorted_groups for i in group]
        self._sorted_ids: IntArray = np.asarray(flat, dtype=np.int64)
        # _group_start[k]: position in _sorted_ids of the first id of the k-th distinct byte string.
        starts = np.cumsum([0] + [len(g) for g in self._sorted_groups])
        self._group_start: IntArray = starts.astype(np.int64)
        self.lengths: IntArray = np.fromiter((len(b) for b in self.token_bytes), np.int64, self.vocab_size)
        self.max_len: int = int(self.lengths.max()) if self.vocab_size else 0
        self.usable: BoolArray = self.lengths > 0
        self._cache: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def of(cls, tokenizer: Any) -> TokenIndex:
        """The index of `tokenizer`, built once per tokenizer object (or returned as is)."""
        if isinstance(tokenizer, TokenIndex):
            return tokenizer
        key = id(tokenizer)
        with _INDEX_LOCK:
            hit = _INDEXES.get(key)
            if hit is not None and hit[0]() is tokenizer:
                return hit[1]
        index = cls(*_read_vocabulary(tokenizer), tokenizer=tokenizer)
        with _INDEX_LOCK:
            _INDEXES[key] = (_weak_or_strong(tokenizer), index)
            with contextlib.suppress(TypeError):  # not weak-referenceable: kept for the process's life
                weakref.finalize(tokenizer, _INDEXES.pop, key, None)
        return index

    def cached(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """Per-index memo (compiled strategies, derived tables): built once, shared by all users."""
        hit = self._cache.get(key, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[no-any-return]
        value = build()
        with self._lock:
            return self._cache.setdefault(key, value)  # type: ignore[no-any-return]

    # --- lookups --------------------------------------------------------------------------------
    def ids_of(self, data: bytes) -> list[int]:
        """Token ids whose bytes are exactly `data` (several when a vocabulary has duplicates)."""
        return self._by_bytes.get(data, [])

    def prefix_token_ids(self, data: bytes) -> list[int]:
        """Ids of tokens whose bytes are a non-empty prefix of `data` (tokens that fit a literal)."""
        out: list[int] = []
        get = self._by_bytes.get
        for n in range(1, min(len(data), self.max_len) + 1):
            ids = get(data[:n])
            if ids:
                out.extend(ids)
        return out

    def has_prefix(self, prefix: bytes) -> bool:
        """Whether any token starts with `prefix` (prunes trie walks)."""
        k = bisect.bisect_left(self._sorted_bytes, prefix)
        return k < len(self._sorted_bytes) and self._sorted_bytes[k].startswith(prefix)

    def ids_with_prefix(self, prefix: bytes) -> IntArray:
        """Ids of tokens whose bytes start with `prefix`: one contiguous slice of the sorted order."""
        lo = bisect.bisect_left(self._sorted_bytes, prefix)
        nxt = _successor(prefix)
        hi = len(self._sorted_bytes) if nxt is None else bisect.bisect_left(self._sorted_bytes, nxt)
        return self._sorted_ids[self._group_start[lo] : self._group_start[hi]]

    def ids_containing(self, pattern: bytes) -> IntArray:
        """Ids of tokens whose bytes contain `pattern` (one regex scan over all tokens, C speed)."""
        blob, starts = self._blob
        hits = [m.start() for m in re.finditer(re.escape(pattern), blob)]
        if not hits:
            return np.zeros(0, dtype=np.int64)
        pos = np.asarray(hits, dtype=np.int64)
        owner = np.searchsorted(starts, pos, side="right") - 1
        inside = pos + len(pattern) <= starts[owner] + self.lengths[owner]
        return np.unique(owner[inside])

    @cached_property
    def _blob(self) -> tuple[bytes, IntArray]:
        """All token bytes concatenated (separated by a NUL) with each token's start offset."""
        starts = np.zeros(self.vocab_size, dtype=np.int64)
        if self.vocab_size:
            starts[1:] = np.cumsum(self.lengths[:-1] + 1)
        return b"\x00".join(self.token_bytes), starts

    @cached_property
    def utf8_end(self) -> npt.NDArray[np.int8]:
        """[8, V]: strict UTF-8 decoder state after each token, from each decoder state (-1 invalid)."""
        out = np.full((UTF8_STATES, self.vocab_size), -1, dtype=np.int8)
        for i, b in enumerate(self.token_bytes):
            if not b:
                continue
            if b.isascii():
                out[0, i] = 0
                continue
            for state in range(UTF8_STATES):
                out[state, i] = utf8_advance(state, b)
        return out

    @cached_property
    def utf8_ok(self) -> BoolArray:
        """[8, V]: the token keeps the text valid UTF-8 from each decoder state (see utf8_advance)."""
        ok: BoolArray = self.utf8_end >= 0
        ok.flags.writeable = False
        return ok

    @cached_property
    def ascii_table(self) -> tuple[IntArray, npt.NDArray[np.uint8], IntArray]:
        """(ids, bytes padded with 0x80, lengths) of the pure-ASCII tokens up to 32 bytes long.

        Why: character-class scans of these tokens vectorise as one lookup-table gather, leaving
        only the few non-ASCII or very long tokens to Python.
        """
        ids = [i for i, b in enumerate(self.token_bytes) if b and len(b) <= 32 and b.isascii()]
        arr = np.asarray(ids, dtype=np.int64)
        lengths = self.lengths[arr]
        width = int(lengths.max(initial=0)) + 1
        flat = np.frombuffer(b"".join(self.token_bytes[i] for i in ids) + b"\x80", dtype=np.uint8)
        starts = np.zeros(len(ids), dtype=np.int64)
        if len(ids):
            starts[1:] = np.cumsum(lengths[:-1])
        cols = np.arange(width, dtype=np.int64)
        inside = cols[None, :] < lengths[:, None]
        pos = np.where(inside, starts[:, None] + cols[None, :], len(flat) - 1)
        return arr, flat[pos], lengths

    @cached_property
    def continuation_ids(self) -> IntArray:
        """Ids of tokens starting with a UTF-8 continuation byte (the only ones valid mid-character)."""
        lo = bisect.bisect_left(self._sorted_bytes, b"\x80")
        hi = bisect.bisect_left(self._sorted_bytes, b"\xc0")
        return self._sorted_ids[self._group_start[lo] : self._group_start[hi]]

    def mask_of(self, ids: Iterable[int] | IntArray) -> BoolArray:
        """A fresh bool[vocab_size] mask with `ids` set."""
        mask = np.zeros(self.vocab_size, dtype=np.bool_)
        arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        if arr.size:
            mask[arr] = True
        return mask

    # --- literals -------------------------------------------------------------------------------
    def tokenize_literal(self, data: bytes) -> list[int] | None:
        """Token ids spelling exactly `data`: the tokenizer's own encoding when it round-trips,
        else a longest-match split over the vocabulary (None when the vocabulary cannot spell it).

        Why: drivers force-emit literals, and e.g. SentencePiece's `encode` prepends a space.
        """
        tokenizer = self._tokenizer_ref() if self._tokenizer_ref else None
        if tokenizer is not None:
            try:
                ids = _encode(tokenizer, data.decode("utf-8"))
            except (UnicodeDecodeError, TypeError, ValueError):
                ids = None
            if ids is not None and self._spells(ids, data):
                return ids
        return self._longest_match(data)

    def _spells(self, ids: list[int], data: bytes) -> bool:
        """The ids are ordinary tokens whose bytes concatenate to exactly `data`."""
        if not all(0 <= i < self.vocab_size and self.token_bytes[i] for i in ids):
            return False
        return b"".join(self.token_bytes[i] for i in ids) == data

    def _longest_match(self, data: bytes) -> list[int] | None:
        """Shortest-token-count split of `data` into vocabulary tokens (DP over byte positions)."""
        n = len(data)
        best: list[tuple[int, int] | None] = [None] * (n + 1)  # (token count, previous position)
        best[0] = (0, -1)
        for start in range(n):
            here = best[start]
            if here is None:
                continue
            for tok in self.prefix_token_ids(data[start:]):
                end = start + len(self.token_bytes[tok])
                cand = (here[0] + 1, start)
                if best[end] is None or cand[0] < best[end][0]:  # type: ignore[index]
                    best[end] = cand
        if best[n] is None:
            return None
        ids: list[int] = []
        end = n
        while end > 0:
            _, start = best[end]  # type: ignore[misc]
            ids.append(self.ids_of(data[start:end])[0])
            end = start
        return ids[::-1]


_MISSING = object()
_INDEX_LOCK = threading.Lock()
_INDEXES: dict[int, tuple[Callable[[], Any], TokenIndex]] = {}


def _weak_or_strong(obj: Any) -> Callable[[], Any]:
    """A weak reference when possible (so indexes die with their tokenizer), else a strong one."""
    if obj is None:
        return lambda: None
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _encode(tokenizer: Any, text: str) -> list[int] | None:
    """`tokenizer.encode(text)` without special tokens, as a list of ids, for any tokenizer flavour."""
    try:
        out = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:
        out = tokenizer.encode(text)
    ids = getattr(out, "ids", out)
    return [int(i) for i in ids] if ids is not None else None


# --- reading a vocabulary ---------------------------------------------------------------------------
def _read_vocabulary(tokenizer: Any) -> tuple[list[bytes], set[int]]:
    """(bytes of every id, special ids) for any supported tokenizer."""
    vocab = _get_vocab(tokenizer)
    special = _special_ids(tokenizer)
    size = _vocab_size(tokenizer, vocab)
    added = _added_contents(tokenizer)
    if vocab is None:
        return [_decode_one(tokenizer, i) for i in range(size)], special
    style = _detect_style(tokenizer, vocab)
    convert = {"bytelevel": _bytelevel_bytes, "sentencepiece": _sentencepiece_bytes}.get(style)
    out = [b""] * size
    for piece, i in vocab.items():
        if not 0 <= i < size:
            continue
        if i in added:
            out[i] = added[i].encode("utf-8")  # added tokens are stored as plain text
        elif convert is not None:
            out[i] = convert(piece)
        else:
            out[i] = _decode_one(tokenizer, i)
    # Ids the vocabulary leaves out but `encode` still produces (toy tokenizers that map any other
    # character to its code point, as the original SDK's tests do) are read by decoding them.
    listed = set(vocab.values())
    for i in range(size):
        if i not in listed and i not in special:
            out[i] = _decode_one(tokenizer, i)
    return out, special


def _get_vocab(tokenizer: Any) -> dict[str, int] | None:
    get = getattr(tokenizer, "get_vocab", None)
    if get is None:
        return None
    try:
        return dict(get(with_added_tokens=True))
    except TypeError:
        return dict(get())


def _vocab_size(tokenizer: Any, vocab: dict[str, int] | None) -> int:
    """len(tokenizer) for HF tokenizers (includes added tokens), else max id + 1."""
    sizes = [max(vocab.values()) + 1] if vocab else []
    with contextlib.suppress(TypeError):
        sizes.append(len(tokenizer))
    get_size = getattr(tokenizer, "get_vocab_size", None)
    if get_size is not None:
        sizes.append(int(get_size(with_added_tokens=True)))
    if not sizes:
        sizes.append(int(tokenizer.vocab_size))
    return max(sizes)


def _special_ids(tokenizer: Any) -> set[int]:
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", None) or []}
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if isinstance(decoder, dict):
        ids |= {int(i) for i, tok in decoder.items() if getattr(tok, "special", False)}
    get_added = getattr(tokenizer, "get_added_tokens_decoder", None)
    if get_added is not None and not hasattr(tokenizer, "all_special_ids"):
        ids |= {int(i) for i, tok in get_added().items() if getattr(tok, "special", False)}
    return ids


def _added_contents(tokenizer: Any) -> dict[int, str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if not isinstance(decoder, dict):
        get_added = getattr(tokenizer, "get_added_tokens_decoder", None)
        decoder = get_added() if get_added is not None else {}
    return {int(i): str(getattr(tok, "content", tok)) for i, tok in decoder.items()}


def _backend_json(tokenizer: Any) -> dict[str, Any] | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and hasattr(tokenizer, "to_str") and hasattr(tokenizer, "get_vocab"):
        backend = tokenizer
    if backend is None:
        return None
    try:
        loaded: dict[str, Any] = json.loads(backend.to_str())
        return loaded
    except Exception:
        return None


def _component_types(node: Any) -> list[str]:
    """Every "type" inside a (possibly Sequence) tokenizers component description."""
    if isinstance(node, dict):
        found = [str(node["type"])] if "type" in node else []
        for value in node.values():
            found += _component_types(value)
        return found
    if isinstance(node, list):
        return [t for item in node for t in _component_types(item)]
    return []


def _detect_style(tokenizer: Any, vocab: dict[str, int]) -> str:
    """'bytelevel' (GPT-2 style), 'sentencepiece' (▁ + <0xNN>), or 'decode' (ask the tokenizer)."""
    spec = _backend_json(tokenizer)
    if spec is not None:
        types = _component_types(spec.get("decoder")) + _component_types(spec.get("pre_tokenizer"))
        if "ByteLevel" in types:
            return "bytelevel"
        if {"Metaspace", "ByteFallback"} & set(types) or (
            "Replace" in types and "▁" in json.dumps(spec.get("decoder"))
        ):
            return "sentencepiece"
        if types:
            return "decode"
    pieces = list(vocab)
    if sum(p.startswith("▁") for p in pieces) > len(pieces) // 20 or "<0x00>" in vocab:
        return "sentencepiece"
    if sum(p.startswith("Ġ") for p in pieces) > len(pieces) // 20 and all(
        c in _BYTE_DECODER for p in pieces[:2000] for c in p
    ):
        return "bytelevel"
    return "decode"


def _bytelevel_bytes(piece: str) -> bytes:
    try:
        return bytes(_BYTE_DECODER[c] for c in piece)
    except KeyError:
        return piece.encode("utf-8")


def _sentencepiece_bytes(piece: str) -> bytes:
    m = _SP_BYTE.match(piece)
    if m:
        return bytes([int(m.group(1), 16)])
    return piece.replace("▁", " ").encode("utf-8")


def _decode_one(tokenizer: Any, token_id: int) -> bytes:
    """Fallback: decode the id alone; ids that decode to a replacement character are unusable."""
    try:
        text = tokenizer.decode([token_id])
    except Exception:
        return b""
    if not isinstance(text, str) or "\ufffd" in text:
        return b""
    return text.encode("utf-8")
