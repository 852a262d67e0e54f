"""Strategies written to the original SDK's runtime protocol, run by our SelfPrompt and flows.

The original SDK lets a mod author write a strategy as an object with `start(tokenizer)`,
`allowed_tokens(state, tokenizer)`, `disallowed_tokens(state, tokenizer)`, `step(state, token_id,
tokenizer)`, `is_complete(state)` and `trim_answer(answer)` (subclassing `Strategy` and
`RuntimeState` from `quote_mod_sdk.strategies.base`), usually behind a `StrategyConstructor` whose
`into_strategy(tokenizer)` builds it. Data flow: `start_run(spec, tokenizer)` compiles our own
strategies as usual and wraps anything else in a `ProtocolRun`, which offers the interface
SelfPrompt drives a `StrategyRun` with (`allowed_mask`, `advance`, `is_complete`, `answer`).
What `step` returns (`ForceTokens` / `Backtrack`) waits in `take_action()`; SelfPrompt returns it
from `handle_added`, as the original does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quote_mod_sdk.actions import Backtrack, ForceTokens

from .base import Strategy, StrategyError, StrategyRun
from .runtime import RuntimeStrategy
from .strategy_constructor import StrategyConstructor
from .token_index import BoolArray, TokenIndex

__all__ = ["ProtocolRun", "is_strategy_like", "start_run"]

_PROTOCOL = ("start", "allowed_tokens", "step", "is_complete")


def _ours(spec: Any) -> bool:
    return isinstance(spec, Strategy) and type(spec)._build is not Strategy._build


def _runtime_protocol(obj: Any) -> bool:
    return all(callable(getattr(obj, name, None)) for name in _PROTOCOL)


def is_strategy_like(spec: Any) -> bool:
    """One of our strategies, a `StrategyConstructor`, or a runtime-protocol strategy."""
    return _ours(spec) or _runtime_protocol(spec) or isinstance(spec, StrategyConstructor)


def start_run(spec: Any, tokenizer: Any) -> StrategyRun | ProtocolRun:
    """A fresh per-request run of `spec` (see the module docstring)."""
    if _ours(spec):
        return spec.compile(tokenizer).start()  # type: ignore[no-any-return]  # _ours checked the type
    runtime = spec if _runtime_protocol(spec) else spec.into_strategy(tokenizer)
    if isinstance(runtime, RuntimeStrategy):  # one of ours, reached through into_strategy
        return runtime.describe(tokenizer).compile(tokenizer).start()
    if not _runtime_protocol(runtime):
        raise StrategyError(f"{spec!r} built {runtime!r}, which lacks start/allowed_tokens/step/is_complete")
    return ProtocolRun(runtime, tokenizer)


class ProtocolRun:
    """One request's progress through a runtime-protocol strategy (the original's interface)."""

    def __init__(self, runtime: Any, tokenizer: Any) -> None:
        self.runtime = runtime
        self.tokenizer = tokenizer
        self.vocab_size = TokenIndex.of(tokenizer).vocab_size
        self.state = runtime.start(tokenizer)
        self.token_ids: list[int] = []
        self._action: ForceTokens | Backtrack | None = None

    def allowed_mask(self) -> BoolArray:
        """Only `allowed_tokens` (all tokens when it is empty), minus `disallowed_tokens`."""
        allowed = set(self.runtime.allowed_tokens(self.state, self.tokenizer) or ())
        disallowed = getattr(self.runtime, "disallowed_tokens", None)
        banned = set(disallowed(self.state, self.tokenizer) or ()) if callable(disallowed) else set()
        mask = np.zeros(self.vocab_size, dtype=np.bool_) if allowed else np.ones(self.vocab_size, dtype=np.bool_)
        mask[[t for t in allowed if 0 <= t < self.vocab_size]] = True
        mask[[t for t in banned if 0 <= t < self.vocab_size]] = False
        return mask

    def forced_text(self) -> str | None:
        return None  # the protocol has no notion of a forced literal: its tokens are masked

    def forced_tokens(self) -> list[int] | None:
        return None

    def advance(self, token_ids: Sequence[int] | int) -> None:
        """Step the strategy through each token; a `ForceTokens`/`Backtrack` it returns is kept
        (merged, as the original merges them) for `take_action`."""
        for tid in [token_ids] if isinstance(token_ids, int) else token_ids:
            self.token_ids.append(int(tid))
            self._merge(self.runtime.step(self.state, int(tid), self.tokenizer))

    def _merge(self, action: Any) -> None:
        if not isinstance(action, (ForceTokens, Backtrack)):
            return
        before = self._action
        n = (before.n if isinstance(before, Backtrack) else 0) + (action.n if isinstance(action, Backtrack) else 0)
        tokens = [*(before.tokens or [] if before else []), *(action.tokens or [])]
        self._action = Backtrack(n, tokens) if n else ForceTokens(tokens)

    def take_action(self) -> ForceTokens | Backtrack | None:
        """What the strategy asked for while stepping, once."""
        action, self._action = self._action, None
        return action

    @property
    def is_complete(self) -> bool:
        return bool(self.runtime.is_complete(self.state))

    @property
    def accepting(self) -> bool:
        return self.is_complete

    @property
    def text(self) -> str:
        return str(self.tokenizer.decode(self.token_ids)) if self.token_ids else ""

    @property
    def answer(self) -> str:
        trim = getattr(self.runtime, "trim_answer", None)
        return str(trim(self.text)) if callable(trim) else self.text
