"""Fixtures for strategy tests: real tokenizers built offline and a decoder-like driving loop.

`tok` is the project's tiny byte-level BPE (GPT-2 style); `sp_tok` is a SentencePiece-style
Unigram vocabulary (Metaspace "▁" + <0xNN> byte fallback) built here, so the token index is not
tested on one vocabulary style only. `drive` runs a strategy the way a decoder would: force-emit
forced literals, otherwise pick an allowed token (towards a target text when given, else at
random), advance, until complete.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.strategies.base import StrategyRun
from quote_mod_sdk.strategies.token_index import TokenIndex


@pytest.fixture(scope="session")
def tok() -> Any:
    from quote_serving.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def index(tok: Any) -> TokenIndex:
    return TokenIndex.of(tok)


SP_WORDS = [
    "▁yes", "▁no", "yes", "no", "ter", "day", "▁yesterday", "▁", "caf", "é", "日本", "▁the",
    "▁answer", "<", ">", "/", "q", "▁q", "</q>", "a", "b", "c", "e", "s", "y", "t", "r", "d", "n",
    "o", "1", "2", "3", "12", "\n", ".", ",", "▁red", "▁green", "red", "green", "ok.", "12\n",
    ".\n",
]  # fmt: skip


def build_sp_tokenizer() -> Any:
    """A Llama-like SentencePiece vocabulary: ▁ marks spaces, unknown bytes fall back to <0xNN>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)]
    pieces += [(f"<0x{b:02X}>", -20.0) for b in range(256)]
    pieces += [(w, -5.0 - 0.1 * k) for k, w in enumerate(SP_WORDS)]
    raw = Tokenizer(models.Unigram(pieces, unk_id=0, byte_fallback=True))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    raw.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="session")
def sp_tok() -> Any:
    return build_sp_tokenizer()


Drive = Callable[..., StrategyRun]


def _towards(run: StrategyRun, target: bytes) -> list[int]:
    """Allowed tokens that continue `target` from what was fed so far."""
    fed = run.data
    rest = target[len(fed) :] if target.startswith(fed) else b""
    mask = run.allowed_mask()
    return [t for t in run.compiled.index.prefix_token_ids(rest) if mask[t]]


def _pick(run: StrategyRun, rng: random.Random, target: bytes | None, shortest: bool) -> int | None:
    """An allowed token: the longest one continuing `target` if any, else a random one."""
    index = run.compiled.index
    allowed = np.flatnonzero(run.allowed_mask())
    if allowed.size == 0:
        return None
    if target is not None:
        fitting = _towards(run, target)
        if fitting:
            sign = -1 if shortest else 1
            return max(fitting, key=lambda t: sign * len(index.token_bytes[t]))
    if shortest:
        lengths = index.lengths[allowed]
        allowed = allowed[lengths == lengths.min()]
    return int(rng.choice(allowed.tolist()))


def drive_run(
    run: StrategyRun,
    tok: Any,
    *,
    seed: int = 0,
    target: str | None = None,
    shortest: bool = False,
    use_forced: bool = True,
    encode_forced: bool = True,
    stop_when_accepting: float = 0.0,
    max_steps: int = 300,
) -> StrategyRun:
    """Decode like a model would until the run completes (or the step budget runs out).

    `target`: the text the "model" wants to write (it picks the longest allowed token continuing
    it); `shortest`: prefer the shortest tokens (splits multi-byte characters and tags);
    `stop_when_accepting`: probability of stopping whenever the run is accepting (with a target,
    the "model" also stops once accepting and nothing allowed continues the target);
    `encode_forced`: force literals with `tok.encode` (as the driver does) or `run.forced_tokens()`.
    """
    rng = random.Random(seed)
    goal = target.encode("utf-8") if target is not None else None
    for _ in range(max_steps):
        if run.is_complete:
            break
        if run.accepting and rng.random() < stop_when_accepting:
            break
        if run.accepting and goal is not None and not _towards(run, goal):
            break
        forced = run.forced_text() if use_forced else None
        if forced is not None:
            run.advance(tok.encode(forced, add_special_tokens=False) if encode_forced else run.forced_tokens())
            continue
        choice = _pick(run, rng, goal, shortest)
        assert choice is not None or run.accepting, f"dead end after {run.text!r}"
        if choice is None:
            break
        run.advance([choice])
    return run


@pytest.fixture()
def drive() -> Drive:
    return drive_run
