"""The completion suffix as the original SDK has it: a `FlowQuestion` ends its answer with "\\n"
unless told otherwise, no suffix is forced when everything is erased or a list ends itself, and
`EraseMode.PROMPT` erases the suffix with the prompt and brings back the answer alone.

Driven event by event the way the original's users test their flows: `handle_event(event,
ActionBuilder(event), tokenizer)` with a one-token-per-character tokenizer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quote_mod_sdk import ActionBuilder, Added, AdjustedLogits, Backtrack, ForceTokens, ForwardPass, Noop, Prefilled
from quote_mod_sdk.flow import FlowEngine, FlowQuestion, route_message
from quote_mod_sdk.self_prompt import EraseMode, SelfPrompt
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat, ListStrat

from .test_original_strategies import CharTokenizer

TOK = CharTokenizer()


class Driver:
    """Feeds one request's events to an engine the way the original's test harness does."""

    def __init__(self, engine: FlowEngine | SelfPrompt, request_id: str = "req") -> None:
        self.engine, self.request_id, self.step = engine, request_id, 0

    def handle(self, event: Any) -> Any:
        if isinstance(self.engine, FlowEngine):
            return self.engine.handle_event(event, ActionBuilder(event), TOK)
        if isinstance(event, Prefilled):
            return self.engine.handle_prefilled(event, TOK)
        if isinstance(event, ForwardPass):
            return self.engine.handle_forward_pass(event, ActionBuilder(event), TOK)
        return self.engine.handle_added(event, ActionBuilder(event), TOK)

    def prefilled(self) -> Any:
        return self.handle(Prefilled(request_id=self.request_id, step=0, max_steps=100, context_info={}))

    def forward(self) -> Any:
        self.step += 1
        return self.handle(ForwardPass(request_id=self.request_id, step=self.step, logits=np.zeros(128, np.float32)))

    def added(self, text: str, forced: bool) -> Any:
        event = Added(request_id=self.request_id, step=self.step, added_tokens=TOK.encode(text), forced=forced)
        return self.handle(event)

    def ask(self, answer: str) -> Any:
        """Prompt forced, answer sampled character by character; returns the next ForwardPass's action."""
        prompt = self.forward()
        assert isinstance(prompt, ForceTokens)
        self.added(TOK.decode(prompt.tokens), forced=True)
        for ch in answer:
            assert isinstance(self.forward(), AdjustedLogits)
            self.added(ch, forced=False)
        return self.forward()


def test_a_question_ends_its_answer_with_a_newline_by_default() -> None:
    q = FlowQuestion(name="q", prompt=" Q:", strategy=ChoicesStrat(["A", "B"]))
    q.then(route_message("Done"))
    assert (q.prompt, q.completion_text) == (" Q:", "\n")
    run = Driver(FlowEngine(entry_question=q))
    run.prefilled()
    suffix = run.ask("B")
    assert isinstance(suffix, ForceTokens) and TOK.decode(suffix.tokens) == "\n"
    run.added("\n", forced=True)
    message = run.forward()
    assert isinstance(message, ForceTokens) and TOK.decode(message.tokens) == "Done"


@pytest.mark.parametrize("completion_text", ["", None])
def test_an_empty_completion_text_means_no_suffix(completion_text: str | None) -> None:
    q = FlowQuestion(name="q", prompt=" Q:", strategy=ChoicesStrat(["A", "B"]), completion_text=completion_text)
    q.then(route_message("Done"))
    run = Driver(FlowEngine(entry_question=q))
    run.prefilled()
    message = run.ask("A")
    assert isinstance(message, ForceTokens) and TOK.decode(message.tokens) == "Done"


def test_erasing_everything_forces_no_suffix() -> None:
    q = FlowQuestion(name="q", prompt=" Q:", strategy=ChoicesStrat(["A", "B"]), erase_mode=EraseMode.ALL)
    run = Driver(FlowEngine(entry_question=q))
    run.prefilled()
    erase = run.ask("A")
    assert isinstance(erase, Backtrack) and erase.n == 4 and erase.tokens is None


def test_a_list_with_its_own_end_forces_no_suffix() -> None:
    strategy = ListStrat(elements=[ChoicesStrat(["x"])], open="[", close="]", end_with=".")
    sp = SelfPrompt(prompt={"text": "L:"}, strategy=strategy, completion="\n")
    run = Driver(sp)
    run.prefilled()
    assert isinstance(run.ask("[x]."), Noop)
    assert sp.is_complete("req")


@pytest.mark.parametrize("completion", ["\n", None])
def test_erase_prompt_erases_the_suffix_with_the_prompt_and_reinjects_the_answer(completion: str | None) -> None:
    sp = SelfPrompt(prompt={"text": "Q:"}, strategy=ChoicesStrat(["Y"]), completion=completion, erase=EraseMode.PROMPT)
    run = Driver(sp)
    run.prefilled()
    action = run.ask("Y")
    if completion:
        assert isinstance(action, ForceTokens) and TOK.decode(action.tokens) == "\n"
        run.added("\n", forced=True)
        action = run.forward()
    assert isinstance(action, Backtrack)
    assert action.n == (4 if completion else 3)  # Q : Y and the suffix, if one was forced
    assert TOK.decode(action.tokens or []) == "Y"
