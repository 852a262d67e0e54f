"""Flows: multi-step self-prompting with branching, declared as questions and routes.

    q = FlowQuestion(name="confirm", prompt=" Proceed? (yes/no): ", strategy=ChoicesStrat(["yes", "no"]))
    q.on("yes", route_message("Ok!")).otherwise(route_noop())
    ENGINE = FlowEngine(entry_question=q)

Each question runs as a `SelfPrompt`; when it is answered (and erased, per its `erase_mode`), the
question's route decides what happens next: another question, a message forced into the output,
a summary of the answers, a final output, a tool call, or nothing (the model carries on).
Route choice, in order: `.on(answer, …)` match → `.branch(fn)` → `.then(…)` → `.otherwise(…)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quote_mod_sdk.actions import Action, ActionBuilder, Noop
from quote_mod_sdk.errors import StrategyError
from quote_mod_sdk.events import Added, Finished, ForwardPass, Prefilled
from quote_mod_sdk.self_prompt import EraseMode, SelfPrompt
from quote_mod_sdk.strategies.base import Strategy
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat

__all__ = [
    "FlowEngine",
    "FlowQuestion",
    "Route",
    "route_message",
    "route_noop",
    "route_output",
    "route_question",
    "route_summary",
    "route_tool",
]

Vars = dict[str, Any]
TextOrFn = str | Callable[[Vars], str]


def _render(value: TextOrFn, variables: Vars) -> str:
    return value(dict(variables)) if callable(value) else str(value).format(**variables)


@dataclass(frozen=True)
class Route:
    """Where a flow goes after a question: `kind` is question|message|summary|output|tool|noop."""

    kind: str
    question: FlowQuestion | None = None
    text: TextOrFn | None = None
    tool_name: str | None = None
    arguments: Mapping[str, Any] | Callable[[Vars], Mapping[str, Any]] | None = None


def route_question(question: FlowQuestion) -> Route:
    return Route("question", question=question)


def route_message(text: TextOrFn) -> Route:
    """Force `text` into the output (formatted with the flow's answers), then the model goes on."""
    return Route("message", text=text)


def route_summary(template: TextOrFn | None = None) -> Route:
    """Force a summary of the answers ("name: answer" lines, or `template`), then the model goes on."""
    return Route("summary", text=template)


def route_output(text: TextOrFn) -> Route:
    """End the request; the whole output is exactly `text`."""
    return Route("output", text=text)


def route_tool(name: str, arguments: Mapping[str, Any] | Callable[[Vars], Mapping[str, Any]] | None = None) -> Route:
    """End the request with a tool call to `name` (arguments may be computed from the answers)."""
    return Route("tool", tool_name=name, arguments=arguments)


def route_noop() -> Route:
    """End the flow; the model carries on generating."""
    return Route("noop")


class FlowQuestion:
    """One question of a flow: a prompt, how its answer is constrained, and where each answer leads."""

    def __init__(
        self,
        name: str,
        prompt: str | Mapping[str, Any],
        strategy: Strategy | None = None,
        responses: Sequence[str] | None = None,
        erase_mode: EraseMode | str | None = EraseMode.NONE,
        completion: str | Mapping[str, Any] | None = None,
    ) -> None:
        if (strategy is None) == (responses is None):
            raise StrategyError(f"FlowQuestion {name!r} needs exactly one of strategy= or responses=")
        self.name = name
        self.strategy = strategy if strategy is not None else ChoicesStrat(list(responses or ()))
        self.erase_mode = EraseMode.coerce(erase_mode)
        self.self_prompt = SelfPrompt(prompt, self.strategy, completion=completion, erase=self.erase_mode)
        self._on: dict[str, Route] = {}
        self._branch: Callable[[Any, Vars], Route | None] | None = None
        self._then: Route | None = None
        self._otherwise: Route | None = None
        self._assign: str | Callable[[Any, Vars], None] | None = None

    def on(self, answer: str, route: Route | FlowQuestion) -> FlowQuestion:
        self._on[answer] = _as_route(route)
        return self

    def then(self, route: Route | FlowQuestion) -> FlowQuestion:
        self._then = _as_route(route)
        return self

    def otherwise(self, route: Route | FlowQuestion) -> FlowQuestion:
        self._otherwise = _as_route(route)
        return self

    def assign(self, target: str | Callable[[Any, Vars], None]) -> FlowQuestion:
        """Store the answer under a variable name, or call `target(answer, vars)` to store it."""
        self._assign = target
        return self

    def branch(self, chooser: Callable[[Any, Vars], Route | FlowQuestion | None]) -> FlowQuestion:
        self._branch = lambda answer, variables: _as_route_or_none(chooser(answer, variables))
        return self

    def record(self, answer: Any, variables: Vars) -> None:
        variables[self.name] = answer
        if callable(self._assign):
            self._assign(answer, variables)
        elif self._assign:
            variables[self._assign] = answer

    def route_for(self, answer: Any, variables: Vars) -> Route:
        key = answer if isinstance(answer, str) else str(answer)
        if key in self._on:
            return self._on[key]
        chosen = self._branch(answer, variables) if self._branch else None
        return chosen or self._then or self._otherwise or route_noop()

    def __repr__(self) -> str:
        return f"<FlowQuestion {self.name!r}>"


def _as_route(value: Route | FlowQuestion) -> Route:
    return route_question(value) if isinstance(value, FlowQuestion) else value


def _as_route_or_none(value: Route | FlowQuestion | None) -> Route | None:
    return None if value is None else _as_route(value)


@dataclass
class _FlowRun:
    question: FlowQuestion
    variables: Vars = field(default_factory=dict)
    asked: int = 1
    done: bool = False


class FlowEngine:
    """Drives a flow per request; call `handle_event` from a mod for every event."""

    def __init__(self, entry_question: FlowQuestion, *, max_questions: int = 64) -> None:
        self.entry_question = entry_question
        self.max_questions = max_questions
        self._runs: dict[str, _FlowRun] = {}

    def handle_event(self, event: Any, actions: ActionBuilder, tokenizer: Any) -> Action:
        if isinstance(event, Prefilled):
            self._start(event.request_id, tokenizer)
        elif isinstance(event, ForwardPass):
            return self._forward(event, actions, tokenizer)
        elif isinstance(event, Added):
            run = self._runs.get(event.request_id)
            if run is not None and not run.done:
                return run.question.self_prompt.handle_added(event, actions, tokenizer)
        elif isinstance(event, Finished):
            self.forget(event.request_id)
        return actions.noop()

    def variables(self, request_id: str) -> Vars:
        """The answers collected so far for a request."""
        run = self._runs.get(request_id)
        return {} if run is None else dict(run.variables)

    def forget(self, request_id: str) -> None:
        run = self._runs.pop(request_id, None)
        if run is not None:
            run.question.self_prompt.forget(request_id)

    def _start(self, request_id: str, tokenizer: Any) -> _FlowRun:
        run = _FlowRun(self.entry_question)
        self._runs[request_id] = run
        run.question.self_prompt.start(request_id, tokenizer)
        return run

    def _forward(self, event: ForwardPass, actions: ActionBuilder, tokenizer: Any) -> Action:
        rid = event.request_id
        run = self._runs.get(rid) or self._start(rid, tokenizer)
        while not run.done:
            sp = run.question.self_prompt
            if not sp.is_finished(rid):
                action = sp.handle_forward_pass(event, actions, tokenizer)
                if not (sp.is_finished(rid) and isinstance(action, Noop)):
                    return action
                # answered with nothing left to erase: route in this same step
            answer = sp.answer(rid)
            run.question.record(answer, run.variables)
            sp.forget(rid)
            route = run.question.route_for(answer, run.variables)
            if route.kind != "question":
                run.done = True
                return self._finish_route(route, run.variables, actions, tokenizer)
            if run.asked >= self.max_questions:
                return actions.emit_error(f"flow asked {run.asked} questions; is there a routing loop?")
            assert route.question is not None
            run.question, run.asked = route.question, run.asked + 1
            route.question.self_prompt.start(rid, tokenizer)
        return actions.noop()

    def _finish_route(self, route: Route, variables: Vars, actions: ActionBuilder, tokenizer: Any) -> Action:
        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False))

        if route.kind == "message" and route.text is not None:
            tokens = encode(_render(route.text, variables))
            return actions.force_tokens(tokens) if tokens else actions.noop()
        if route.kind == "summary":
            text = (
                _render(route.text, variables) if route.text else "".join(f"{k}: {v}\n" for k, v in variables.items())
            )
            return actions.force_tokens(encode(text)) if text else actions.noop()
        if route.kind == "output" and route.text is not None:
            return actions.force_output(encode(_render(route.text, variables)))
        if route.kind == "tool" and route.tool_name:
            args = route.arguments(dict(variables)) if callable(route.arguments) else dict(route.arguments or {})
            return actions.tool_calls({"name": route.tool_name, "arguments": args})
        return actions.noop()
