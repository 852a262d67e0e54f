"""ChoicesStrat: exactly one of the choices, ending exactly on a token boundary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.strategies.base import StrategyError
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat
from quote_mod_sdk.strategies.token_index import TokenIndex


def allowed_bytes(run: Any) -> list[bytes]:
    index = run.compiled.index
    return [index.token_bytes[t] for t in np.flatnonzero(run.allowed_mask())]


def test_choices_sharing_prefixes_only_allow_valid_continuations(tok: Any) -> None:
    choices = ["yes", "yesterday", "no"]
    run = ChoicesStrat(choices).compile(tok).start()
    root = allowed_bytes(run)
    assert root, "some token must be allowed at the start"
    for data in root:
        assert any(c.encode().startswith(data) for c in choices), data
    assert b"y" in root and b"n" in root


def test_choice_that_is_a_prefix_of_another_is_accepting_but_continuable(tok: Any, index: TokenIndex) -> None:
    run = ChoicesStrat(["yes", "yesterday", "no"]).compile(tok).start()
    run.advance(index.tokenize_literal(b"yes") or [])
    assert run.accepting and not run.is_complete
    assert run.answer == "yes"
    for data in allowed_bytes(run):
        assert b"terday".startswith(data)
    run.advance(index.tokenize_literal(b"terday") or [])
    assert run.is_complete and run.answer == "yesterday"
    assert not run.allowed_mask().any()


def test_single_letter_choices_a_and_ab(tok: Any, index: TokenIndex, drive: Any) -> None:
    compiled = ChoicesStrat(["A", "AB"]).compile(tok)
    run = compiled.start()
    run.advance(index.ids_of(b"A"))
    assert run.accepting and not run.is_complete and run.answer == "A"
    assert allowed_bytes(run) == [b"B"]
    for seed in range(10):
        done = drive(compiled.start(), tok, seed=seed, stop_when_accepting=0.5)
        assert done.accepting and done.answer in ("A", "AB") and done.text == done.answer


def test_tokens_overshooting_a_choice_are_disallowed(tok: Any, index: TokenIndex) -> None:
    run = ChoicesStrat(["no", "yes"]).compile(tok).start()
    mask = run.allowed_mask()
    overshoot = [t for t in index.ids_with_prefix(b"no").tolist() if len(index.token_bytes[t]) > 2]
    assert overshoot, "the tiny vocabulary has tokens like 'not'/'now'"
    assert not mask[overshoot].any()
    with pytest.raises(StrategyError):
        run.advance([overshoot[0]])
    assert run.n_tokens == 0 and run.text == ""


def test_random_decoding_always_ends_on_a_choice(tok: Any, drive: Any) -> None:
    choices = ["yes", "yesterday", "no", "maybe", "mayor"]
    compiled = ChoicesStrat(choices).compile(tok)
    for seed in range(25):
        run = drive(compiled.start(), tok, seed=seed, use_forced=seed % 2 == 0)
        assert run.is_complete or run.accepting
        assert run.answer in choices and run.text == run.answer


def test_multibyte_choices_split_mid_character(tok: Any, drive: Any) -> None:
    choices = ["café", "日本語", "😀", "日曜"]
    compiled = ChoicesStrat(choices).compile(tok)
    for seed in range(12):
        run = drive(compiled.start(), tok, seed=seed, shortest=True, use_forced=False)
        assert run.is_complete and run.answer in choices and run.text == run.answer
        # byte-sized steps really split characters
        assert run.n_tokens >= len(run.answer.encode()) // 2


def test_forced_text_stops_at_whole_characters_and_choice_points(tok: Any, index: TokenIndex) -> None:
    compiled = ChoicesStrat(["日本語", "日曜"]).compile(tok)
    run = compiled.start()
    # "日" is shared; the next character diverges in its last byte: only "日" is forced text.
    assert run.forced_text() == "日"
    assert b"".join(index.token_bytes[t] for t in run.forced_tokens() or []) == "日".encode() + b"\xe6"
    run.advance(tok.encode("日", add_special_tokens=False))
    assert run.forced_text() is None  # the rest of the forced bytes is a partial character
    run.advance(index.ids_of(b"\xe6"))
    assert run.forced_text() is None and not run.accepting
    single = ChoicesStrat(["yesterday"]).compile(tok).start()
    assert single.forced_text() == "yesterday"
    several = ChoicesStrat(["yes", "no"]).compile(tok).start()
    assert several.forced_text() is None


def test_choices_reject_empty_or_missing_values() -> None:
    with pytest.raises(ValueError):
        ChoicesStrat([])
    with pytest.raises(ValueError):
        ChoicesStrat(["a", ""])
    assert ChoicesStrat(["a", "b", "a"]).choices == ("a", "b")
