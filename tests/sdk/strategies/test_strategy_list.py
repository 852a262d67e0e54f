"""ListStrat: open literal, items and separators, close literal; answer is the item answers."""

from __future__ import annotations

from typing import Any

import pytest

from quote_mod_sdk.strategies.primitives import CharsMode, UntilEndType
from quote_mod_sdk.strategies.strategy_constructor import CharsStrat, ChoicesStrat, ListStrat, UntilStrat
from quote_mod_sdk.strategies.token_index import TokenIndex

COLORS = ChoicesStrat(["red", "green", "blue"])


def test_list_forces_open_separator_and_close_literals(tok: Any, index: TokenIndex) -> None:
    run = ListStrat(COLORS, separator=", ", open="[", close="]", min_items=2, max_items=3).compile(tok).start()
    assert run.forced_text() == "["
    run.advance(tok.encode("[", add_special_tokens=False))
    assert run.forced_text() is None  # an item: the model chooses
    run.advance(index.tokenize_literal(b"red") or [])
    assert run.forced_text() == ", "  # min_items not reached: only the separator fits
    run.advance(tok.encode(", ", add_special_tokens=False))
    run.advance(index.tokenize_literal(b"blue") or [])
    assert run.forced_text() is None and not run.accepting  # separator or close
    run.advance(tok.encode(", ", add_special_tokens=False))
    run.advance(index.tokenize_literal(b"green") or [])
    assert run.forced_text() == "]"  # max_items reached
    run.advance(tok.encode("]", add_special_tokens=False))
    assert run.is_complete and run.answer == ["red", "blue", "green"] and run.text == "[red, blue, green]"


def test_random_lists_have_valid_items_and_counts(tok: Any, drive: Any) -> None:
    compiled = ListStrat(COLORS, separator=", ", open="[", close="]", min_items=1, max_items=4).compile(tok)
    for seed in range(15):
        run = drive(compiled.start(), tok, seed=seed, use_forced=seed % 3 != 0)
        assert run.is_complete
        assert 1 <= len(run.answer) <= 4 and set(run.answer) <= {"red", "green", "blue"}
        assert run.text == "[" + ", ".join(run.answer) + "]"


def test_item_that_may_continue_keeps_both_readings(tok: Any, drive: Any) -> None:
    compiled = ListStrat(ChoicesStrat(["A", "AB"]), separator="\n", close="\n\n", min_items=0).compile(tok)
    run = drive(compiled.start(), tok, target="A\nAB\nA\n\nrest")
    assert run.is_complete and run.answer == ["A", "AB", "A"]
    empty = drive(compiled.start(), tok, target="\n\n")
    assert empty.is_complete and empty.answer == []


def test_list_of_chars_items_ends_when_accepting(tok: Any, drive: Any) -> None:
    compiled = ListStrat(CharsStrat(CharsMode.ALPHA, stop=None, max_chars=10), separator=", ").compile(tok)
    run = drive(compiled.start(), tok, target="red, green")
    assert run.accepting and not run.is_complete
    assert run.answer == ["red", "green"]


def test_line_items_with_empty_separator_and_an_ambiguous_close(tok: Any, drive: Any) -> None:
    compiled = ListStrat(CharsStrat(CharsMode.STRING, stop="\n"), separator="", close="END", min_items=2).compile(tok)
    run = drive(compiled.start(), tok, target="first line\nsecond\nEND")
    assert run.accepting and run.answer == ["first line", "second"]
    longer = drive(compiled.start(), tok, target="a\nb\nENDING is an item\nEND")
    assert longer.accepting and longer.answer == ["a", "b", "ENDING is an item"]


def test_list_items_can_be_until_strategies(tok: Any, drive: Any) -> None:
    item = UntilStrat("<q>", UntilEndType.TAG, "</q>")
    compiled = ListStrat(item, separator="\n", max_items=2).compile(tok)
    run = drive(compiled.start(), tok, target="<q>one</q>\n<q>two?</q>")
    assert run.is_complete and run.answer == ["one", "two?"]


def test_list_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        ListStrat(COLORS, separator=",", close=",")
    with pytest.raises(ValueError):
        ListStrat(COLORS, min_items=3, max_items=2)
    with pytest.raises(ValueError):
        ListStrat("red")  # type: ignore[arg-type]
