"""`@mod`: arity from the signature, validation of what handlers return, options."""

from __future__ import annotations

import pytest

from quote_mod_sdk import ActionBuilder, ForwardPass, InvalidActionError, Mod, QuoteModError, mod

EVENT = ForwardPass("r", 1, [0.0, 1.0])


def test_three_argument_handler_gets_the_tokenizer() -> None:
    seen = []

    @mod
    def handler(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        seen.append(tokenizer)
        return actions.noop()

    handler(EVENT, ActionBuilder(), "TOK")
    assert seen == ["TOK"]


def test_two_argument_handler_is_called_without_tokenizer() -> None:
    @mod
    def handler(event, actions):  # type: ignore[no-untyped-def]
        return actions.noop()

    assert handler(EVENT, ActionBuilder(), "TOK") == ActionBuilder().noop()


def test_type_error_inside_handler_is_not_retried() -> None:
    calls = []

    @mod
    def handler(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise TypeError("bug in the mod")

    with pytest.raises(TypeError, match="bug in the mod"):
        handler(EVENT, ActionBuilder(), None)
    assert calls == [1]


def test_handler_with_wrong_arity_is_refused_at_decoration() -> None:
    with pytest.raises(QuoteModError, match=r"must take \(event, actions, tokenizer\) or \(event, actions\)"):

        @mod
        def handler(event):  # type: ignore[no-untyped-def]
            return None


def test_invalid_action_raises_inside_the_decorator() -> None:
    @mod
    def handler(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        return actions.adjust_prefill([1])

    with pytest.raises(InvalidActionError, match="adjust_prefill is not allowed on ForwardPass"):
        handler(EVENT, ActionBuilder(), None)


def test_options_are_keyword_only_and_recorded() -> None:
    @mod(name="renamed", max_backtrack=8)
    def handler(event, actions):  # type: ignore[no-untyped-def]
        """Does nothing."""
        return None

    assert isinstance(handler, Mod)
    assert (handler.name, handler.max_backtrack, handler.description) == ("renamed", 8, "Does nothing.")
    assert handler.__name__ == "handler"
    with pytest.raises(TypeError):
        mod(lambda e, a: None, "positional-name")  # type: ignore[call-overload]


def test_undeclared_backtrack_is_unknown() -> None:
    @mod
    def handler(event, actions):  # type: ignore[no-untyped-def]
        return None

    assert handler.max_backtrack is None
