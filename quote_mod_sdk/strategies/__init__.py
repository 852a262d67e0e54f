"""Constrained-generation strategies: describe the text a mod wants, get per-token masks.

Data flow: `strategy_constructor` (what mod authors build) -> `Strategy.compile(tokenizer)` (once
per tokenizer, via `token_index.TokenIndex`) -> `CompiledStrategy.start()` -> `StrategyRun`
(`allowed_mask` / `forced_text` / `advance` / `rollback`, driven by SelfPrompt and flows).
"""

from .base import CompiledStrategy, RuntimeState, Strategy, StrategyError, StrategyRun
from .primitives import CharsMode, UntilEndType
from .runtime import (
    CharsStrategy,
    ChoicesStrategy,
    ListStrategy,
    RuntimeStrategy,
    TokensStrategy,
    TrieNode,
    UntilStrategy,
)
from .sequence import SeqStrat
from .strategy_constructor import CharsStrat, ChoicesStrat, ListStrat, UntilStrat
from .token_index import TokenIndex

__all__ = [
    "CharsMode",
    "CharsStrat",
    "CharsStrategy",
    "ChoicesStrat",
    "ChoicesStrategy",
    "CompiledStrategy",
    "ListStrat",
    "ListStrategy",
    "RuntimeState",
    "RuntimeStrategy",
    "SeqStrat",
    "Strategy",
    "StrategyError",
    "StrategyRun",
    "TokenIndex",
    "TokensStrategy",
    "TrieNode",
    "UntilEndType",
    "UntilStrat",
    "UntilStrategy",
]
