"""The runtime interface every strategy compiles into.

Data flow: a mod builds a `Strategy` (a small immutable description, e.g. `ChoicesStrat(["A","B"])`);
the driver calls `strategy.compile(tokenizer)` once (cached per strategy value and tokenizer), which
does the heavy per-vocabulary work and returns a `CompiledStrategy`; per request the driver calls
`compiled.start()` and then, per generated token, `run.allowed_mask()` (or `run.forced_text()`),
samples, and `run.advance([token])`.

A compiled strategy is a pure state machine over *bytes*: `step(state, data) -> state | None`, with
hashable `mask_key(state)` so masks are computed once per distinct key and then served from a
cache. `StrategyRun` keeps the stack of states (one per fed token), which makes `rollback` a pop.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from quote_mod_sdk.errors import StrategyError as StrategyError  # re-exported: one exception tree

from .token_index import BoolArray, TokenIndex, split_utf8_tail

if TYPE_CHECKING:
    from .runtime import RuntimeStrategy

State = Any


class Strategy:
    """A description of the text to constrain generation to; hashable so compilation is cached."""

    def compile(self, tokenizer: Any) -> CompiledStrategy:
        """Compile against `tokenizer` (or a `TokenIndex`); cached per (strategy, tokenizer)."""
        index = TokenIndex.of(tokenizer)
        return index.cached(("strategy", self), lambda: self._build(index))

    def _build(self, index: TokenIndex) -> CompiledStrategy:
        """Do the per-vocabulary precomputation (called once per tokenizer).

        Not abstract: the original SDK's users subclass `Strategy` to write runtime-protocol
        strategies (`start`/`allowed_tokens`/`step`/…), which run through `custom.ProtocolRun`.
        """
        raise StrategyError(
            f"{type(self).__name__} does not compile: implement _build, or the runtime protocol "
            "(start/allowed_tokens/step/is_complete) and pass it to SelfPrompt or FlowQuestion"
        )

    def into_strategy(self, tokenizer: Any) -> RuntimeStrategy:
        """The original SDK's runtime protocol (`start`/`allowed_tokens`/`step`/`is_complete`)."""
        from .runtime import into_strategy

        return into_strategy(self, tokenizer)


T = TypeVar("T")


def normalize_threads(
    threads: list[T], expand: Callable[[T], tuple[bool, list[T]]], key: Callable[[T], Hashable]
) -> tuple[T, ...]:
    """Expand parser threads to a fixed point (`expand`: does the thread stay, and which threads it
    also becomes), keeping the first (highest-priority) thread per `key`; shared by the sequence
    and list strategies, whose states are such thread sets."""
    out: dict[Hashable, T] = {}
    todo = list(reversed(threads))
    while todo:
        thread = todo.pop()
        stays, also = expand(thread)
        if stays:
            out.setdefault(key(thread), thread)
        todo.extend(reversed(also))
    return tuple(out.values())


class CompiledStrategy(ABC):
    """A strategy bound to a vocabulary: a byte-level state machine plus cached token masks.

    Subclasses implement the state-machine methods below; `mask` caches `compute_mask` per
    `mask_key`. Masks are shared, read-only arrays: callers must not write to them.
    """

    def __init__(self, strategy: Strategy, index: TokenIndex):
        self.strategy = strategy
        self.index = index
        self.vocab_size: int = index.vocab_size
        self._masks: dict[Hashable, BoolArray] = {}
        self._capacity = max(16, (8 << 20) // max(1, index.vocab_size))  # ~8 MiB of masks
        self._lock = threading.Lock()
        self._empty = self._freeze(np.zeros(index.vocab_size, dtype=np.bool_))

    def start(self) -> StrategyRun:
        """Fresh per-request state (cheap)."""
        return StrategyRun(self)

    # --- state machine (implemented by each strategy) ------------------------------------------
    @abstractmethod
    def initial_state(self) -> State:
        """The state before any token."""

    @abstractmethod
    def step(self, state: State, data: bytes) -> State | None:
        """State after one token's bytes, or None if they violate the strategy."""

    @abstractmethod
    def mask_key(self, state: State) -> Hashable:
        """Everything about `state` that the allowed mask depends on (the cache key)."""

    @abstractmethod
    def compute_mask(self, state: State) -> BoolArray:
        """The allowed-token mask for `state` (only called on a cache miss)."""

    @abstractmethod
    def is_accepting(self, state: State) -> bool:
        """The text so far is a complete answer."""

    @abstractmethod
    def is_complete(self, state: State) -> bool:
        """Accepting and nothing more may be emitted."""

    def forced_bytes(self, state: State) -> bytes | None:
        """The literal that must come next, when only one continuation exists."""
        return None

    @abstractmethod
    def answer_of(self, state: State, data: bytes) -> Any:
        """The value of the text `data` that led to `state`."""

    # --- cached masks ---------------------------------------------------------------------------
    def mask(self, state: State) -> BoolArray:
        """Read-only allowed mask for `state`, computed once per distinct `mask_key`."""
        key = self.mask_key(state)
        hit = self._masks.get(key)
        if hit is not None:
            return hit
        mask = self._freeze(self.compute_mask(state))
        with self._lock:
            if len(self._masks) >= self._capacity:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = mask
        return mask

    def has_cached_mask(self, state: State) -> bool:
        """Whether `mask(state)` would be a cache hit (for benchmarks and diagnostics)."""
        return self.mask_key(state) in self._masks

    def mask_from_ids(self, ids: Any) -> BoolArray:
        """A mask with exactly `ids` set (for sparse sets such as literal prefixes)."""
        return self.index.mask_of(ids)

    @staticmethod
    def _freeze(mask: BoolArray) -> BoolArray:
        mask.flags.writeable = False
        return mask

    def __repr__(self) -> str:
        return f"<compiled {self.strategy!r} vocab={self.vocab_size}>"


class StrategyRun:
    """Per-request progress through a compiled strategy.

    Keeps one state per fed token (so `rollback(n)` just drops the last n) and the bytes fed.
    `allowed_mask()` returns a shared read-only array; copy it before modifying.
    """

    def __init__(self, compiled: CompiledStrategy):
        self.compiled = compiled
        self._states: list[State] = [compiled.initial_state()]
        self._token_ids: list[int] = []
        self._data = bytearray()
        self._offsets: list[int] = [0]

    # --- driving --------------------------------------------------------------------------------
    def allowed_mask(self) -> BoolArray:
        """bool[vocab_size]: tokens allowed next (read-only; never includes special tokens)."""
        return self.compiled.mask(self._states[-1])

    def forced_text(self) -> str | None:
        """The literal that must come next when it is the only continuation, else None.

        Cut to whole characters: None when it starts mid-character (follow `allowed_mask()`, or
        use `forced_tokens()`), and a trailing partial character is left for the next call.
        """
        data = self.compiled.forced_bytes(self._states[-1])
        if not data:
            return None
        body, _ = split_utf8_tail(data)
        try:
            return body.decode("utf-8") or None
        except UnicodeDecodeError:
            return None

    def forced_tokens(self) -> list[int] | None:
        """Token ids spelling the forced literal exactly (safer than `tokenizer.encode`, which may
        add a leading space in SentencePiece vocabularies); None when nothing is forced."""
        data = self.compiled.forced_bytes(self._states[-1])
        if not data:
            return None
        return self.compiled.index.tokenize_literal(data)

    def advance(self, token_ids: Sequence[int] | int) -> None:
        """Feed tokens appended to the text; all-or-nothing: on a violation nothing is fed."""
        ids = [token_ids] if isinstance(token_ids, int) else [int(t) for t in token_ids]
        index = self.compiled.index
        state = self._states[-1]
        new_states: list[State] = []
        fed = bytearray()
        for tid in ids:
            data = index.token_bytes[tid] if 0 <= tid < index.vocab_size else b""
            if not data:
                raise StrategyError(
                    f"token {tid} is special or unknown and is never allowed by {self.compiled.strategy!r}"
                )
            nxt = self.compiled.step(state, data)
            if nxt is None:
                seen = (bytes(self._data) + bytes(fed)).decode("utf-8", "replace")
                raise StrategyError(f"token {tid} ({data!r}) violates {self.compiled.strategy!r} after {seen!r}")
            state = nxt
            new_states.append(state)
            fed += data
        for tid, st in zip(ids, new_states):
            self._token_ids.append(tid)
            self._states.append(st)
            self._data += index.token_bytes[tid]
            self._offsets.append(len(self._data))

    def rollback(self, n_tokens: int) -> None:
        """Undo the last `n_tokens` fed tokens (a mod backtracked)."""
        if n_tokens < 0:
            raise StrategyError(f"cannot roll back a negative number of tokens ({n_tokens})")
        fed = len(self._token_ids)
        if n_tokens > fed:
            raise StrategyError(f"cannot roll back {n_tokens} tokens: only {fed} were fed (the cap is {fed})")
        if n_tokens == 0:
            return
        del self._states[-n_tokens:]
        del self._token_ids[-n_tokens:]
        del self._offsets[-n_tokens:]
        del self._data[self._offsets[-1] :]

    # --- inspection -----------------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        """The text so far is a complete answer (the driver may stop here)."""
        return bool(self.compiled.is_accepting(self._states[-1]))

    @property
    def is_complete(self) -> bool:
        """Accepting and no continuation is possible."""
        return bool(self.compiled.is_complete(self._states[-1]))

    @property
    def text(self) -> str:
        """Everything fed so far, decoded (errors replaced: the text may end mid-character)."""
        return bytes(self._data).decode("utf-8", "replace")

    @property
    def data(self) -> bytes:
        """Everything fed so far, as raw bytes (may end mid-character)."""
        return bytes(self._data)

    @property
    def answer(self) -> Any:
        """The value: chosen choice / text between tags / chars before the stop / list of items."""
        return self.compiled.answer_of(self._states[-1], bytes(self._data))

    @property
    def token_ids(self) -> list[int]:
        """Ids fed so far (a copy)."""
        return list(self._token_ids)

    @property
    def n_tokens(self) -> int:
        """How many tokens were fed (the rollback cap)."""
        return len(self._token_ids)

    @property
    def vocab_size(self) -> int:
        return self.compiled.vocab_size

    def __repr__(self) -> str:
        return f"<StrategyRun {self.compiled.strategy!r} text={self.text!r} complete={self.is_complete}>"


RuntimeState = StrategyRun
"""Opaque per-generation state of a runtime strategy (our `StrategyRun`; the original's users
subclass it for their own strategies' state)."""


# ----- the original SDK's helpers for writing runtime-protocol strategies -----------------------
def require_token_ids(tokenizer: Any) -> set[int]:
    """Every token id of `tokenizer`: its vocabulary's ids, else range(len(tokenizer))."""
    get_vocab = getattr(tokenizer, "get_vocab", None)
    vocab = get_vocab() if callable(get_vocab) else None
    if isinstance(vocab, dict) and vocab:
        return {int(v) for v in vocab.values()}
    try:
        return set(range(len(tokenizer)))
    except TypeError as exc:
        raise StrategyError("the tokenizer must expose get_vocab() or __len__()") from exc


def tokenize_str(text: str | None, tokenizer: Any) -> list[int]:
    """`text` as token ids, without special tokens ("" and None give [])."""
    if not text:
        return []
    return [int(t) for t in tokenizer.encode(text, add_special_tokens=False)]


def decode_token(tokenizer: Any, token_id: int) -> str:
    """One token's text ("" when the tokenizer cannot say)."""
    try:
        return str(tokenizer.decode([int(token_id)], skip_special_tokens=True))
    except TypeError:
        return str(tokenizer.decode([int(token_id)]))


def __getattr__(name: str) -> Any:
    # TrieNode lives with the runtime classes, which import this module; resolved on first use.
    if name == "TrieNode":
        from .runtime import TrieNode

        return TrieNode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
