"""The StrategyRun contract: masks agree with advance, rollback, errors, caching, specials."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.strategies.base import Strategy, StrategyError
from quote_mod_sdk.strategies.primitives import CharsMode, UntilEndType
from quote_mod_sdk.strategies.strategy_constructor import CharsStrat, ChoicesStrat, ListStrat, UntilStrat
from quote_mod_sdk.strategies.token_index import TokenIndex

STRATEGIES: list[Strategy] = [
    ChoicesStrat(["yes", "yesterday", "no", "café", "日本語", "😀", "A", "AB"]),
    UntilStrat("<question_to_user>", UntilEndType.TAG, "</question_to_user>"),
    UntilStrat("日本", UntilEndType.TAG, "語る"),
    UntilStrat("", UntilEndType.ANYCHAR, ".\n。"),
    CharsStrat(CharsMode.NUMERIC, stop="\n", max_chars=5),
    CharsStrat(CharsMode.ALPHA, stop="。", min_chars=3, max_chars=10),
    CharsStrat(CharsMode.STRING, stop="\n\n", min_chars=2, max_chars=30),
    CharsStrat(CharsMode.WORD, stop=" ", max_chars=7),
    ListStrat(ChoicesStrat(["red", "green", "blue"]), separator=", ", open="[", close="]"),
    ListStrat(ChoicesStrat(["A", "AB"]), separator="\n", close="\n\n", min_items=0, max_items=3),
    ListStrat(CharsStrat(CharsMode.STRING, stop="\n"), separator="", close="END", min_items=2),
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: type(s).__name__)
def test_masks_match_token_by_token_validation_and_never_dead_end(tok: Any, strategy: Strategy) -> None:
    """Brute force over the whole vocabulary: a token is in the mask iff advancing with it works."""
    compiled = strategy.compile(tok)
    index = compiled.index
    for seed in range(4):
        run = compiled.start()
        rng = random.Random(seed)
        for _ in range(12):
            mask = run.allowed_mask()
            state = run._states[-1]
            expected = [bool(b) and compiled.step(state, b) is not None for b in index.token_bytes]
            assert np.array_equal(mask, np.asarray(expected)), run.text
            assert not mask[list(index.special_ids)].any()
            if not mask.any():
                assert run.is_complete
                break
            assert not run.is_complete
            ids = np.flatnonzero(mask)
            if rng.random() < 0.6:  # short tokens reach partial characters and partial tags
                ids = ids[index.lengths[ids] == index.lengths[ids].min()]
            run.advance([int(rng.choice(ids.tolist()))])


def test_rollback_restores_the_previous_state_and_mask(tok: Any, index: TokenIndex) -> None:
    run = ChoicesStrat(["yes", "yesterday", "no"]).compile(tok).start()
    root_mask = run.allowed_mask()
    run.advance(index.ids_of(b"y"))
    after_y = run.allowed_mask()
    run.advance(index.tokenize_literal(b"es") or [])
    assert run.accepting
    run.rollback(1)
    assert run.text == "y" and not run.accepting and np.array_equal(run.allowed_mask(), after_y)
    run.rollback(1)
    assert run.text == "" and run.n_tokens == 0 and np.array_equal(run.allowed_mask(), root_mask)
    run.advance(index.ids_of(b"n"))
    run.advance(index.ids_of(b"o"))
    assert run.is_complete and run.answer == "no"


def test_rollback_within_a_list_returns_to_an_earlier_item(tok: Any, drive: Any) -> None:
    run = drive(
        ListStrat(ChoicesStrat(["red", "blue"]), open="[", close="]").compile(tok).start(),
        tok,
        target="[red, blue]",
    )
    assert run.answer == ["red", "blue"]
    tokens = run.token_ids
    run.rollback(len(tokens) - 1)  # back to just after "["
    assert run.text == "[" and run.answer == []
    drive(run, tok, target="[blue]")
    assert run.is_complete and run.answer == ["blue"]


def test_rollback_more_than_fed_raises_naming_the_cap(tok: Any, index: TokenIndex) -> None:
    run = CharsStrat(CharsMode.NUMERIC).compile(tok).start()
    run.advance(index.ids_of(b"1") + index.ids_of(b"2"))
    with pytest.raises(StrategyError, match="only 2"):
        run.rollback(3)
    with pytest.raises(StrategyError):
        run.rollback(-1)
    assert run.text == "12"


def test_advance_is_all_or_nothing(tok: Any, index: TokenIndex) -> None:
    run = CharsStrat(CharsMode.NUMERIC).compile(tok).start()
    with pytest.raises(StrategyError, match="violates"):
        run.advance(index.ids_of(b"1") + index.ids_of(b"x"))
    assert run.text == "" and run.n_tokens == 0


def test_special_tokens_are_never_allowed_nor_accepted(tok: Any, index: TokenIndex) -> None:
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    assert eos in index.special_ids and index.token_bytes[eos] == b""
    for strategy in STRATEGIES:
        run = strategy.compile(tok).start()
        assert not run.allowed_mask()[eos]
        with pytest.raises(StrategyError, match="special"):
            run.advance([eos])


def test_masks_are_shared_read_only_arrays(tok: Any) -> None:
    run = UntilStrat("", UntilEndType.TAG, "</a>").compile(tok).start()
    mask = run.allowed_mask()
    assert mask.dtype == np.bool_ and mask.shape == (run.vocab_size,) and run.vocab_size == len(tok)
    with pytest.raises(ValueError):
        mask[0] = True
    assert run.allowed_mask() is mask  # served from the cache


def test_compile_is_cached_per_strategy_value_and_tokenizer(tok: Any, sp_tok: Any) -> None:
    a = ChoicesStrat(["x", "y"]).compile(tok)
    assert ChoicesStrat(("x", "y")).compile(tok) is a
    assert ChoicesStrat(["x", "y"]).compile(sp_tok) is not a
    assert a.start() is not a.start()


def test_strategies_are_hashable_values() -> None:
    item = CharsStrat(CharsMode.HEX, stop=None, max_chars=4)
    assert ListStrat(item) == ListStrat(CharsStrat(CharsMode.HEX, stop=None, max_chars=4))
    assert len({ListStrat(item), ListStrat(item), ChoicesStrat(["a"])}) == 2


def test_importing_strategies_loads_no_ml_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, quote_mod_sdk.strategies.strategy_constructor, quote_mod_sdk.strategies.primitives\n"
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
