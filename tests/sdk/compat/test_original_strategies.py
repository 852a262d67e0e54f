"""The original SDK's strategy runtime protocol and ListStrat options, served by our strategies."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from quote_mod_sdk.errors import StrategyError
from quote_mod_sdk.strategies import RuntimeState, SeqStrat, StrategyRun
from quote_mod_sdk.strategies.list_strategy import ListStrategy
from quote_mod_sdk.strategies.primitives import (
    CharsMode,
    CharsStrategy,
    ChoicesStrategy,
    TokensStrategy,
    TrieNode,
    UntilEndType,
    UntilStrategy,
)
from quote_mod_sdk.strategies.strategy_constructor import CharsStrat, ChoicesStrat, ListStrat, UntilStrat


class CharTokenizer:
    """One token per character, id = code point (like the original's test tokenizer)."""

    def __init__(
        self, chars: str = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:_-[]<>/"\n'
    ) -> None:
        self._vocab = {ch: ord(ch) for ch in chars}
        self.eos_token_id: int | None = None

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self._vocab[ch] for ch in text]

    def decode(self, tokens: Iterable[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(int(t)) for t in tokens)


TOK = CharTokenizer()


def feed(strategy, state, text: str) -> None:  # type: ignore[no-untyped-def]
    for ch in text:
        assert ord(ch) in strategy.allowed_tokens(state, TOK), (
            ch,
            sorted(map(chr, strategy.allowed_tokens(state, TOK))),
        )
        strategy.step(state, ord(ch), TOK)


def test_into_strategy_gives_the_original_runtime_classes() -> None:
    assert isinstance(ChoicesStrat(["a"]).into_strategy(TOK), ChoicesStrategy)
    assert isinstance(UntilStrat("", UntilEndType.TAG, "</a>").into_strategy(TOK), UntilStrategy)
    assert isinstance(CharsStrat(CharsMode.ALPHA, stop=".").into_strategy(TOK), CharsStrategy)
    assert isinstance(ListStrat(elements=ChoicesStrat(["a"])).into_strategy(TOK), ListStrategy)
    assert RuntimeState is StrategyRun


def test_choices_protocol_and_a_shorter_choice_wins_as_in_the_original() -> None:
    s = ChoicesStrat(["hi", "hit", "ho"]).into_strategy(TOK)
    st = s.start(TOK)
    assert s.allowed_tokens(st, TOK) == {ord("h")}
    feed(s, st, "h")
    assert s.allowed_tokens(st, TOK) == {ord("i"), ord("o")}
    assert not s.is_complete(st)
    feed(s, st, "i")
    assert s.is_complete(st) and st.answer == "hi"
    with pytest.raises(StrategyError):
        s.step(st, ord("x"), TOK)


def test_until_and_chars_protocol_and_disallowed_eos() -> None:
    tok = CharTokenizer()
    tok.eos_token_id = ord("\n")
    u = UntilStrat("<a>", UntilEndType.TAG, "</a>").into_strategy(tok)
    st = u.start(tok)
    assert u.allowed_tokens(st, tok) == {ord("<")}
    assert u.disallowed_tokens(st, tok) == {ord("\n")}
    feed(u, st, "<a>xy</a")
    assert not u.is_complete(st)
    feed(u, st, ">")
    assert u.is_complete(st) and st.answer == "xy" and u.disallowed_tokens(st, tok) == set()
    c = CharsStrat(CharsMode.NUMERIC, stop=3).into_strategy(TOK)
    st = c.start(TOK)
    assert ord("a") not in c.allowed_tokens(st, TOK)
    feed(c, st, "123")
    assert c.is_complete(st) and c.allowed_tokens(st, TOK) == set()
    assert c.trim_answer("123") == "123"


def test_primitives_built_the_original_way_compile_on_start() -> None:
    root = TrieNode()
    for word in ("yes", "no"):
        root.insert(TOK.encode(word))
    choices = ChoicesStrategy(root)
    st = choices.start(TOK)
    assert choices.allowed_tokens(st, TOK) == {ord("y"), ord("n")}
    feed(choices, st, "no")
    assert choices.is_complete(st)

    until = UntilStrategy("", UntilEndType.ANYCHAR, ".\n")
    st = until.start(TOK)
    feed(until, st, "ab.")
    assert until.is_complete(st)

    chars = CharsStrategy(CharsMode.ALPHA, ".", min_chars=1)
    st = chars.start(TOK)
    assert ord(".") not in chars.allowed_tokens(st, TOK)
    feed(chars, st, "ab.")
    assert chars.is_complete(st)

    tokens = TokensStrategy({ord("x"), ord("y")})
    st = tokens.start(TOK)
    assert tokens.allowed_tokens(st, TOK) == {ord("x"), ord("y")} and not tokens.is_complete(st)
    with pytest.raises(StrategyError):
        tokens.step(st, ord("z"), TOK)
    tokens.step(st, ord("y"), TOK)
    assert tokens.is_complete(st) and tokens.allowed_tokens(st, TOK) == set()
    with pytest.raises(ValueError):
        TokensStrategy([])

    lst = ListStrategy(
        open_ids=TOK.encode("["), close_ids=TOK.encode("]"), sep_ids=TOK.encode(","),
        min_elements=1, max_elements=2, elements=ChoicesStrategy(root),
    )  # fmt: skip
    st = lst.start(TOK)
    feed(lst, st, "[yes,no")
    assert lst.allowed_tokens(st, TOK) == {ord("]")}  # max reached: no third element
    feed(lst, st, "]")
    assert lst.is_complete(st) and st.answer == ["yes", "no"]


def test_fixed_element_list_with_wrap_and_end_with() -> None:
    spec = ListStrat(
        elements=[ChoicesStrat(["ab"]), CharsStrat(CharsMode.NUMERIC, stop=2)],
        open="[", close="]", wrap='"', sep=", ", end_with=".",
    )  # fmt: skip
    assert (spec.min_items, spec.max_items) == (2, 2)
    s = spec.into_strategy(TOK)
    st = s.start(TOK)
    feed(s, st, '["ab", "')
    assert ord("a") not in s.allowed_tokens(st, TOK)  # the second element is numeric
    feed(s, st, '42"')
    assert s.allowed_tokens(st, TOK) == {ord("]")}  # exactly two elements
    feed(s, st, "]")
    assert not s.is_complete(st) and s.allowed_tokens(st, TOK) == {ord(".")}
    feed(s, st, ".")
    assert s.is_complete(st) and st.answer == ["ab", "42"]


def test_wrap_keeps_both_readings_when_an_element_may_go_on() -> None:
    # "a" is complete but "ab" may follow: the closing quote and "b" are both allowed.
    s = ListStrat(elements=ChoicesStrat(["a", "ab"]), wrap='"', sep=",", open="[", close="]").into_strategy(TOK)
    st = s.start(TOK)
    feed(s, st, '["a')
    assert s.allowed_tokens(st, TOK) == {ord('"'), ord("b")}
    feed(s, st, '","ab"]')
    assert s.is_complete(st) and st.answer == ["a", "ab"]


def test_original_default_min_is_zero_and_zero_length_lists() -> None:
    item = ChoicesStrat(["x"])
    assert ListStrat(elements=item).min_items == 0
    assert ListStrat(item).min_items == 1  # our own spelling keeps its default
    s = ListStrat(elements=item, open="[", close="]").into_strategy(TOK)
    st = s.start(TOK)
    feed(s, st, "[")
    assert s.allowed_tokens(st, TOK) == {ord("x"), ord("]")}
    feed(s, st, "]")
    assert s.is_complete(st) and st.answer == []
    bare = ListStrat(elements=item, max=1).compile(TOK).start()
    assert bare.accepting and bare.answer == []


def test_our_spellings_and_values_stay_the_same() -> None:
    colour = ChoicesStrat(["red", "green"])
    assert ListStrat(colour, ", ") == ListStrat(colour, separator=", ")
    assert ListStrat([colour, colour]) == ListStrat(elements=[colour, colour])
    assert ListStrat(colour, wrap="'") != ListStrat(colour)
    with pytest.raises(ValueError):
        ListStrat([])
    with pytest.raises(ValueError):
        SeqStrat(("", colour))
    run = SeqStrat(("<", colour, ">")).compile(TOK).start()
    run.advance(TOK.encode("<red>"))
    assert run.is_complete and run.answer == "red"


class LooseTokenizer(CharTokenizer):
    """Like the original's test tokenizer: `get_vocab` lists some characters, and `encode` maps any
    other character to its code point all the same."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(ch) for ch in text]


def test_characters_missing_from_get_vocab_are_spelled_by_their_encode_ids() -> None:
    tok = LooseTokenizer("abcxyz")
    until = UntilStrat("<a>", UntilEndType.TAG, "</a>").into_strategy(tok)
    state = until.start(tok)
    assert until.allowed_tokens(state, tok) == {ord("<")}
    for ch in "<a>xyz</a>":
        until.step(state, ord(ch), tok)
    assert until.is_complete(state)
    listed = ListStrat(elements=[ChoicesStrat(["x"])], open="<<", close=">").into_strategy(tok)
    state = listed.start(tok)
    assert listed.allowed_tokens(state, tok) == {ord("<")}
