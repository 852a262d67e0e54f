"""UntilStrat: forced start literal, free UTF-8 text, ends exactly at the first end marker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.strategies.base import StrategyError
from quote_mod_sdk.strategies.primitives import UntilEndType
from quote_mod_sdk.strategies.strategy_constructor import UntilStrat
from quote_mod_sdk.strategies.token_index import TokenIndex

QUESTION = UntilStrat("<question_to_user>", UntilEndType.TAG, "</question_to_user>")


def assert_no_token_passes_the_end(run: Any, ends: list[bytes]) -> None:
    """Every allowed token leaves the text either before any end or exactly at the first end."""
    index = run.compiled.index
    body = run.data[len(run.compiled.start_bytes) :]
    for t in np.flatnonzero(run.allowed_mask()).tolist():
        text = body + index.token_bytes[t]
        hits = [text.find(e) + len(e) for e in ends if e in text]
        assert not hits or min(hits) == len(text), (body, index.token_bytes[t])


def test_until_forces_start_tag_then_ends_exactly_at_end_tag(tok: Any, drive: Any) -> None:
    run = QUESTION.compile(tok).start()
    assert run.forced_text() == "<question_to_user>"
    target = "<question_to_user>Which city, Paris or Rome?</question_to_user> trailing text"
    drive(run, tok, target=target)
    assert run.is_complete and run.accepting
    assert run.text == "<question_to_user>Which city, Paris or Rome?</question_to_user>"
    assert run.answer == "Which city, Paris or Rome?"
    assert not run.allowed_mask().any()


def test_end_tag_split_across_several_tokens(tok: Any, index: TokenIndex, drive: Any) -> None:
    run = QUESTION.compile(tok).start()
    run.advance(tok.encode("<question_to_user>hi", add_special_tokens=False))
    for byte in b"</question_":  # a partial tag is still free text
        run.advance(index.ids_of(bytes([byte])))
        assert_no_token_passes_the_end(run, [b"</question_to_user>"])
    assert not run.accepting
    run.advance(index.ids_of(b"X"))  # diverges: the partial tag was just text
    assert not run.is_complete
    drive(run, tok, target=run.text + " more</question_to_user>", shortest=True)
    assert run.is_complete and run.answer == "hi</question_X more"


def test_tokens_running_past_the_end_tag_are_disallowed(tok: Any, index: TokenIndex) -> None:
    strategy = UntilStrat("", UntilEndType.TAG, "o")
    run = strategy.compile(tok).start()
    mask = run.allowed_mask()
    past = [t for t in index.ids_containing(b"o").tolist() if not index.token_bytes[t].endswith(b"o")]
    assert past and not mask[past].any()
    ending = [t for t in index.ids_containing(b"o").tolist() if index.token_bytes[t].count(b"o") == 1]
    ending = [t for t in ending if index.token_bytes[t].endswith(b"o")]
    assert ending and mask[ending].all()
    with pytest.raises(StrategyError):
        run.advance([past[0]])
    run.advance([ending[0]])
    assert run.is_complete and run.answer == index.token_bytes[ending[0]][:-1].decode()


def test_random_free_text_never_passes_the_end_tag(tok: Any, drive: Any) -> None:
    compiled = UntilStrat("Q:", UntilEndType.TAG, "the").compile(tok)
    for seed in range(8):
        run = compiled.start()
        for _ in range(25):
            if run.is_complete:
                break
            assert_no_token_passes_the_end(run, [b"the"])
            drive(run, tok, seed=seed, max_steps=1)
        if run.is_complete:
            assert run.text.endswith("the") and "the" not in run.answer


def test_multibyte_tags_split_mid_character(tok: Any, drive: Any) -> None:
    compiled = UntilStrat("「日本」", UntilEndType.TAG, "」😀").compile(tok)
    for seed in range(5):
        run = drive(compiled.start(), tok, seed=seed, target="「日本」café 語」x」😀 after", shortest=True)
        assert run.is_complete and run.answer == "café 語」x"


def test_anychar_end_stops_at_the_first_end_character(tok: Any, drive: Any) -> None:
    strategy = UntilStrat("", UntilEndType.ANYCHAR, ".\n")
    run = drive(strategy.compile(tok).start(), tok, target="Say hi to the cat. More text.")
    assert run.is_complete and run.text == "Say hi to the cat." and run.answer == "Say hi to the cat"
    run = strategy.compile(tok).start()
    assert_no_token_passes_the_end(run, [b".", b"\n"])
    drive(run, tok, target="two\nlines.")
    assert run.answer == "two" and run.text == "two\n"


def test_anychar_end_with_a_multibyte_end_character(tok: Any, drive: Any) -> None:
    strategy = UntilStrat("", UntilEndType.ANYCHAR, "。!")
    for seed in range(4):
        run = drive(strategy.compile(tok).start(), tok, seed=seed, target="日本語です。次", shortest=True)
        assert run.is_complete and run.answer == "日本語です" and run.text.endswith("。")


def test_free_text_stays_valid_utf8(tok: Any, index: TokenIndex) -> None:
    run = UntilStrat("", UntilEndType.TAG, "</a>").compile(tok).start()
    run.advance(index.ids_of(b"\xe6"))  # first byte of a 3-byte character
    for t in np.flatnonzero(run.allowed_mask()).tolist():
        assert 0x80 <= index.token_bytes[t][0] < 0xC0
    with pytest.raises(StrategyError):
        run.advance(index.ids_of(b"a"))


def test_until_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        UntilStrat("<a>", UntilEndType.TAG, "")
    with pytest.raises(ValueError):
        UntilStrat("<a>", "tag", "</a>")  # type: ignore[arg-type]
