"""Strategies written to the original SDK's runtime protocol, the way its users extend it: a
`Strategy` subclass with `start`/`allowed_tokens`/`disallowed_tokens`/`step`/`is_complete`/
`trim_answer`, its state a `RuntimeState` dataclass, built by a `StrategyConstructor`. They run in
`SelfPrompt` and `FlowQuestion` beside ours; what `step` returns comes back from `Added`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from quote_mod_sdk import AdjustedLogits, Backtrack, ForceOutput, ForceTokens, Noop, StrategyError
from quote_mod_sdk.flow import FlowEngine, FlowQuestion, route_output
from quote_mod_sdk.self_prompt import SelfPrompt
from quote_mod_sdk.strategies.base import RuntimeState, Strategy, decode_token, require_token_ids, tokenize_str
from quote_mod_sdk.strategies.strategy_constructor import StrategyConstructor

from .test_original_completion_suffix import TOK, Driver


@dataclass
class _DigitsState(RuntimeState):
    count: int = 0
    done: bool = False


class ThreeDigits(Strategy):
    """Exactly three digits; after the third, the strategy asks for a "." to be forced."""

    def __init__(self, then: str = ".") -> None:
        self.then = then

    def start(self, tokenizer: Any) -> RuntimeState:
        return _DigitsState()

    def allowed_tokens(self, state: _DigitsState, tokenizer: Any) -> set[int]:
        return {t for t in require_token_ids(tokenizer) if decode_token(tokenizer, t).isdigit()}

    def disallowed_tokens(self, state: _DigitsState, tokenizer: Any) -> set[int]:
        return set()

    def step(self, state: _DigitsState, token_id: int, tokenizer: Any) -> ForceTokens | None:
        state.count += 1
        state.done = state.count == 3
        return ForceTokens(tokenize_str(self.then, tokenizer)) if state.done and self.then else None

    def is_complete(self, state: _DigitsState) -> bool:
        return state.done

    def trim_answer(self, answer: str) -> str:
        return answer.strip()


class ThreeDigitsStrat(StrategyConstructor):
    def __init__(self, then: str = ".") -> None:
        self.then = then

    def into_strategy(self, tokenizer: Any) -> Strategy:
        return ThreeDigits(self.then)


def allowed(action: Any) -> set[str]:
    assert isinstance(action, AdjustedLogits)
    return {chr(i) for i in np.flatnonzero(np.asarray(action.logits) > -1e8)}


def test_a_custom_strategy_masks_steps_and_forces_what_its_step_asks_for() -> None:
    sp = SelfPrompt(prompt={"text": "N:"}, strategy=ThreeDigitsStrat(), completion="\n")
    run = Driver(sp)
    run.prefilled()
    prompt = run.forward()
    assert isinstance(prompt, ForceTokens) and TOK.decode(prompt.tokens) == "N:"
    assert isinstance(run.added("N:", forced=True), Noop)
    for digit in "42":
        assert allowed(run.forward()) == set("0123456789")
        assert isinstance(run.added(digit, forced=False), Noop)
    assert allowed(run.forward()) == set("0123456789")
    then = run.added("7", forced=False)
    assert isinstance(then, ForceTokens) and TOK.decode(then.tokens) == "."
    suffix = run.forward()
    assert isinstance(suffix, ForceTokens) and TOK.decode(suffix.tokens) == "\n"
    assert sp.is_complete("req") and sp.answer("req") == "427"


def test_a_flow_question_takes_a_custom_strategy_and_routes_on_its_answer() -> None:
    q = FlowQuestion(name="code", prompt=" Code:", strategy=ThreeDigitsStrat(then=""), completion_text="")
    q.then(route_output("code {code}"))
    run = Driver(FlowEngine(entry_question=q))
    run.prefilled()
    final = run.ask("123")
    assert isinstance(final, ForceOutput) and TOK.decode(final.tokens) == "code 123"


class Stubborn(ThreeDigits):
    """Asks to take its last digit back after every digit: the original stops it after 3 tries."""

    def step(self, state: _DigitsState, token_id: int, tokenizer: Any) -> Backtrack | None:  # type: ignore[override]
        return Backtrack(1)


def test_a_custom_strategy_may_backtrack_three_times_then_is_ignored() -> None:
    sp = SelfPrompt(strategy=Stubborn())
    run = Driver(sp)
    run.prefilled()
    answers = []
    for digit in "12345":
        run.forward()
        answers.append(run.added(digit, forced=False))
    assert [type(a).__name__ for a in answers] == ["Backtrack"] * 3 + ["Noop"] * 2


def test_something_that_is_no_strategy_is_refused() -> None:
    with pytest.raises(StrategyError, match="needs a strategy"):
        SelfPrompt(strategy=object())  # type: ignore[arg-type]
    with pytest.raises(StrategyError, match="does not compile"):
        Strategy().compile(TOK)
