"""CharsStrat: characters of one class, min/max budgets, ended by the stop (excluded)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.strategies.base import StrategyError
from quote_mod_sdk.strategies.primitives import CharsMode
from quote_mod_sdk.strategies.strategy_constructor import CharsStrat
from quote_mod_sdk.strategies.token_index import TokenIndex


def allowed(run: Any) -> list[bytes]:
    index = run.compiled.index
    return [index.token_bytes[t] for t in np.flatnonzero(run.allowed_mask())]


def test_numeric_chars_end_at_the_stop_and_exclude_it(tok: Any, drive: Any) -> None:
    run = drive(CharsStrat(CharsMode.NUMERIC, stop="\n").compile(tok).start(), tok, target="2024\nlater")
    assert run.is_complete and run.text == "2024\n" and run.answer == "2024"
    for data in allowed(CharsStrat(CharsMode.NUMERIC, stop="\n").compile(tok).start()):
        text = data.decode()
        digits = text.rstrip("\n")
        assert digits.isdigit() or text == "\n" or (text.endswith("\n") and digits.isdigit()), data


def test_min_chars_blocks_the_stop_until_reached(tok: Any, index: TokenIndex) -> None:
    run = CharsStrat(CharsMode.NUMERIC, stop="\n", min_chars=3).compile(tok).start()
    newline = index.ids_of(b"\n")
    assert not run.allowed_mask()[newline].any()
    run.advance(index.ids_of(b"1"))
    run.advance(index.ids_of(b"2"))
    assert not run.allowed_mask()[newline].any()
    with pytest.raises(StrategyError):
        run.advance(newline)
    run.advance(index.ids_of(b"3"))
    assert run.allowed_mask()[newline].all()
    run.advance(newline)
    assert run.is_complete and run.answer == "123"


def test_max_chars_rejects_tokens_longer_than_the_budget_and_completes(tok: Any, index: TokenIndex) -> None:
    run = CharsStrat(CharsMode.ALPHA, stop="\n", max_chars=5).compile(tok).start()
    run.advance(tok.encode("the", add_special_tokens=False))
    assert all(len(d.decode("utf-8", "replace").rstrip("\n")) <= 2 for d in allowed(run))
    assert any(len(d) == 2 and d.isalpha() for d in allowed(run))
    run.advance(index.tokenize_literal(b"ir") or [])
    assert run.is_complete and run.answer == "their" and not run.allowed_mask().any()
    with pytest.raises(StrategyError):
        run.advance(index.ids_of(b"\n"))


def test_tokens_equal_to_or_starting_with_the_stop_are_allowed(tok: Any, index: TokenIndex) -> None:
    compiled = CharsStrat(CharsMode.ALPHA, stop=". ").compile(tok)
    run = compiled.start()
    run.advance(index.ids_of(b"hi"))
    mask = run.allowed_mask()
    assert mask[index.ids_of(b".")].all()
    dotted = [t for t in index.ids_with_prefix(b". ").tolist() if index.token_bytes[t] != b". "]
    assert not mask[dotted].any()  # would run past the stop
    run.advance(index.ids_of(b"."))
    assert run.forced_text() == " " and not run.accepting
    run.advance(index.ids_of(b" "))
    assert run.is_complete and run.answer == "hi"


def test_a_token_with_chars_then_the_stop_completes(sp_tok: Any) -> None:
    index = TokenIndex.of(sp_tok)
    run = CharsStrat(CharsMode.ALPHA, stop=".").compile(sp_tok).start()
    mask = run.allowed_mask()
    assert mask[index.ids_of(b"ok.")].all() and not mask[index.ids_of(b".\n")].any()
    run.advance(index.ids_of(b"ok."))
    assert run.is_complete and run.answer == "ok"
    numbers = CharsStrat(CharsMode.NUMERIC, stop="\n", min_chars=3).compile(sp_tok).start()
    assert not numbers.allowed_mask()[index.ids_of(b"12\n")].any()  # only 2 digits
    numbers.advance(index.ids_of(b"1")[:1])  # "1" and its byte-fallback twin <0x31>
    numbers.advance(index.ids_of(b"12\n"))
    assert numbers.is_complete and numbers.answer == "112"


def test_alpha_accepts_multibyte_letters_split_across_tokens(tok: Any, drive: Any) -> None:
    compiled = CharsStrat(CharsMode.ALPHA, stop="\n").compile(tok)
    for seed in range(3):
        run = drive(compiled.start(), tok, seed=seed, target="caféΕλληνικά\n", shortest=True)
        assert run.is_complete and run.answer == "caféΕλληνικά"


def test_alpha_rejects_digits_and_symbols_but_not_a_split_letter(tok: Any, index: TokenIndex) -> None:
    run = CharsStrat(CharsMode.ALPHA, stop="\n").compile(tok).start()
    mask = run.allowed_mask()
    assert not mask[index.ids_of(b"1")].any() and not mask[index.ids_of(b"!")].any()
    assert mask[index.ids_of("é".encode()[:1])].all()  # C3 can still become a letter
    run.advance(index.ids_of(b"\xc3"))
    assert run.allowed_mask()[index.ids_of(b"\xa9")].all()  # é
    assert not run.allowed_mask()[index.ids_of(b"\x97")].any()  # × is not a letter


def test_chars_without_stop_is_accepting_after_min_chars(tok: Any, index: TokenIndex) -> None:
    run = CharsStrat(CharsMode.LOWER, stop=None, min_chars=2).compile(tok).start()
    run.advance(index.ids_of(b"a"))
    assert not run.accepting
    run.advance(index.ids_of(b"b"))
    assert run.accepting and not run.is_complete and run.answer == "ab"
    assert not run.allowed_mask()[index.ids_of(b"\n")].any()


@pytest.mark.parametrize("mode", list(CharsMode))
def test_every_mode_produces_only_its_characters(tok: Any, drive: Any, mode: CharsMode) -> None:
    stop = "\n" if mode is not CharsMode.WORD else " "
    compiled = CharsStrat(mode, stop=stop, min_chars=1, max_chars=12).compile(tok)
    pred = mode.predicate()
    for seed in range(6):
        run = drive(compiled.start(), tok, seed=seed, shortest=seed % 2 == 1)
        assert run.is_complete, run.text
        assert 1 <= len(run.answer) <= 12
        assert all(pred(ch) and ch != stop[0] for ch in run.answer), (mode, run.answer)
        assert run.text in (run.answer, run.answer + stop)


def test_chars_validate_their_arguments() -> None:
    with pytest.raises(ValueError):
        CharsStrat(CharsMode.ALPHA, stop="end")  # the stop would be read as letters
    with pytest.raises(ValueError):
        CharsStrat(CharsMode.NUMERIC, min_chars=3, max_chars=2)
    assert CharsStrat(CharsMode.STRING, stop="").stop is None
