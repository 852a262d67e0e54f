"""Flows: multi-step self-prompting with branching, declared as questions and routes.

    q = FlowQuestion(name="confirm", prompt=" Proceed? (yes/no): ", strategy=ChoicesStrat(["yes", "no"]))
    q.on("yes", route_message("Ok!")).otherwise(route_noop())
    ENGINE = FlowEngine(entry_question=q)

Each question runs as a `SelfPrompt`; when it is answered (and erased, per its `erase_mode`), the
question's route decides what happens next: another question, a message forced into the output,
a summary of the answers, a final output, a tool call, or nothing (the model carries on).
Route choice, in order: `.on(answer, …)` match → `.then(…)` → `.branch(fn)` → `.otherwise(…)`;
a route may also be a callable of the request's state, called when it is taken.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from quote_mod_sdk.actions import Action, ActionBuilder, Noop
from quote_mod_sdk.errors import StrategyError
from quote_mod_sdk.events import Added, Finished, ForwardPass, Prefilled
from quote_mod_sdk.self_prompt import EraseMode, SelfPrompt
from quote_mod_sdk.strategies.base import Strategy
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat, StrategyConstructor

__all__ = [
    "FlowDefinition",
    "FlowEngine",
    "FlowQuestion",
    "FlowRoute",
    "FlowState",
    "RequestState",
    "Route",
    "RouteKind",
    "RouteSpec",
    "RouteTarget",
    "TState",
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


class RouteKind(str, enum.Enum):
    """The original SDK's route kinds; each equals our `Route.kind` string."""

    QUESTION = "question"
    MESSAGE = "message"
    SUMMARY = "summary"
    OUTPUT = "output"
    TOOL = "tool"
    NOOP = "noop"


@runtime_checkable
class FlowState(Protocol):
    """What a `state_factory` must build (the original SDK's protocol): `answers` and `data`."""

    answers: Vars
    data: dict[str, Any]


@dataclass
class RequestState:
    """A request's flow state as the original SDK exposes it: `answers` is the same dict our
    callbacks receive as `vars`; `data` is a free bag for the mod's own per-request values."""

    request_id: str
    current_question: FlowQuestion | None = None
    answers: Vars = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """Where a flow goes after a question: `kind` is question|message|summary|output|tool|noop."""

    kind: str
    question: FlowQuestion | None = None
    text: TextOrFn | None = None
    tool_name: str | None = None
    callback: Callable[..., Any] | None = None  # route_tool(callback): callback(actions, state, tokenizer)
    arguments: Mapping[str, Any] | Callable[[Vars], Mapping[str, Any]] | None = None


FlowRoute = Route  # the original SDK's name


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


def route_tool(
    name: str | Callable[..., Any], arguments: Mapping[str, Any] | Callable[[Vars], Mapping[str, Any]] | None = None
) -> Route:
    """End the request with a tool call to `name` (arguments may be computed from the answers).

    The original SDK's form `route_tool(callback)` calls `callback(actions, state, tokenizer)` when
    the route is taken and returns the action it builds (a tool call, a forced message, …)."""
    if callable(name):
        if arguments is not None:
            raise StrategyError("route_tool(callback) takes no arguments")
        return Route("tool", callback=name)
    return Route("tool", tool_name=name, arguments=arguments)


def route_noop() -> Route:
    """End the flow; the model carries on generating."""
    return Route("noop")


class _Unset(enum.Enum):
    """`completion_text` not given (the default suffix applies); None or "" mean no suffix."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET
DEFAULT_COMPLETION_TEXT = "\n"  # as in the original SDK: each answer ends its line


class FlowQuestion:
    """One question of a flow: a prompt, how its answer is constrained, and where each answer leads.

    After the answer the suffix `completion_text` ("\\n" by default; `completion=` is our spelling,
    a string or `{"suffix", "force"}`) is forced, unless the question erases everything
    (`erase_mode="all"`) or its strategy is a `ListStrat` with its own `end_with`. Pass
    `completion_text=""` (or None) for no suffix."""

    def __init__(
        self,
        name: str,
        prompt: str | Mapping[str, Any],
        strategy: Strategy | StrategyConstructor | None = None,
        responses: Sequence[str] | None = None,
        erase_mode: EraseMode | str | None = EraseMode.NONE,
        completion: str | Mapping[str, Any] | None = None,
        *,
        completion_text: str | _Unset | None = _UNSET,
    ) -> None:
        if (strategy is None) == (responses is None):
            raise StrategyError(f"FlowQuestion {name!r} needs exactly one of strategy= or responses=")
        if not isinstance(completion_text, _Unset):  # the original SDK's spelling of the suffix
            if completion is not None:
                raise StrategyError(f"FlowQuestion {name!r}: give the suffix once, completion or completion_text")
            completion = completion_text or ""
        elif completion is None:
            completion = DEFAULT_COMPLETION_TEXT
        self.name = name
        self.strategy = strategy if strategy is not None else ChoicesStrat(list(responses or ()))
        self.erase_mode = EraseMode.coerce(erase_mode)
        self.self_prompt = SelfPrompt(prompt, self.strategy, completion=completion, erase=self.erase_mode)
        self._on: dict[str, RouteSpec] = {}
        self._branches: list[Callable[[Any, Any], RouteSpec]] = []
        self._then: RouteSpec | None = None
        self._otherwise: RouteSpec | None = None
        self._assigns: list[str | Callable[..., None]] = []
        self._auto_answer: Callable[[RequestState], str | None] | None = None

    @property
    def prompt(self) -> str:
        """The question's text (the original SDK's field)."""
        return self.self_prompt.prompt_text

    @property
    def completion_text(self) -> str:
        """The suffix forced after the answer ("" for none; the original SDK's field)."""
        return self.self_prompt.suffix

    def with_auto_answer(self, fn: Callable[[RequestState], str | None]) -> FlowQuestion:
        """`fn(state)` runs when the flow reaches this question; a non-blank string it returns is
        taken as the answer (recorded, routed on) without asking the model."""
        self._auto_answer = fn
        return self

    def auto_answer(self, state: RequestState) -> str | None:
        if self._auto_answer is None:
            return None
        answer = self._auto_answer(state)
        return answer.strip() if isinstance(answer, str) and answer.strip() else None

    def resolve_route(self, state: RequestState | Vars, answer: Any = None) -> Route:
        """The route this answer takes (the original SDK's name for `route_for`)."""
        if not isinstance(state, RequestState):
            state = RequestState("", answers=state)
        return self.route_for(answer, state.answers, state)

    def on(self, answer: str, route: RouteSpec) -> FlowQuestion:
        self._on[answer] = _as_spec(route)
        return self

    def then(self, route: RouteSpec) -> FlowQuestion:
        self._then = _as_spec(route)
        return self

    def otherwise(self, route: RouteSpec) -> FlowQuestion:
        self._otherwise = _as_spec(route)
        return self

    def assign(self, target: str | Callable[..., None]) -> FlowQuestion:
        """Store the answer under a variable name, or call `target(answer, vars)` to store it.

        The original SDK's `target(state, answer)` is recognised by its first parameter (named
        `state`, `s`, `st`, `ctx`, … or annotated `…State`), and is the reading of any callable
        whose names do not say `(answer, vars)`. Each call adds one assignment (run in order)."""
        self._assigns.append(target)
        return self

    def branch(self, chooser: Callable[..., RouteSpec]) -> FlowQuestion:
        """`chooser(answer, vars)`, or the original SDK's one-argument `chooser(state)` (its state
        has `.answers`, our vars). Several branches are tried in order; None from one tries the
        next."""
        if _n_positional(chooser) == 1:
            self._branches.append(lambda answer, state: chooser(state))
        else:
            self._branches.append(lambda answer, state: chooser(answer, state.answers))
        return self

    def record(self, answer: Any, variables: Vars, state: RequestState | None = None) -> None:
        variables[self.name] = answer
        for target in self._assigns:
            if not callable(target):
                variables[target] = answer
            elif _takes_state_first(target):
                target(
                    state if state is not None and state.answers is variables else RequestState("", answers=variables),
                    answer,
                )
            else:
                target(answer, variables)

    def route_for(self, answer: Any, variables: Vars, state: RequestState | None = None) -> Route:
        """`.on` (exact match first, then case-insensitive) → `.then` → `.branch` → `.otherwise`.

        A route given as a callable (the original SDK's `RouteSpec`) is called with the request's
        state when it is taken, until it gives a route, a question, a message string or None."""
        if state is None or state.answers is not variables:
            state = RequestState("", answers=variables)
        key = answer if isinstance(answer, str) else str(answer)
        folded = [r for k, r in self._on.items() if k.casefold() == key.casefold()]
        spec = self._on[key] if key in self._on else folded[0] if folded else self._then
        if spec is not None:
            return _resolve(spec, state)
        for chooser in self._branches:
            route = _resolve_or_none(chooser(answer, state), state)
            if route is not None:
                return route
        return _resolve(self._otherwise, state) if self._otherwise is not None else route_noop()

    def __repr__(self) -> str:
        return f"<FlowQuestion {self.name!r}>"


_STATE_NAMES = frozenset({"state", "s", "st", "flow_state", "request_state", "ctx", "context"})
_OUR_SECOND = frozenset({"vars", "variables", "answers", "v"})
_ANSWER_FIRST = frozenset({"answer", "ans", "a", "value", "text", "choice"})


def _takes_state_first(fn: Callable[..., Any]) -> bool:
    """Whether an assignment is the original SDK's `fn(state, answer)` rather than our
    `fn(answer, vars)`: by a state-like first parameter (name or `…State` annotation), else ours
    when the names say so (`(answer, vars)`), else the original's order."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
    except (TypeError, ValueError):
        return False
    if not params:
        return False
    first = params[0]
    annotation = first.annotation if isinstance(first.annotation, str) else getattr(first.annotation, "__name__", "")
    if first.name in _STATE_NAMES or str(annotation).endswith("State"):
        return True
    if len(params) > 1 and params[1].name in _OUR_SECOND:
        return False
    return first.name not in _ANSWER_FIRST


def _n_positional(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


RouteTarget = Any
"""What a route resolves to (the original SDK's name): a `Route`, a `FlowQuestion`, a
`FlowDefinition` (its root question), a message string, or None (nothing more)."""
RouteSpec = Any
"""A `RouteTarget`, or a callable of the request's state returning one (called when taken)."""
TState = TypeVar("TState")
"""The type of a flow's per-request state (the original SDK's type variable)."""

_MAX_RESOLVE = 32  # callables returning callables: a cycle is a bug in the flow, not a route


def _is_target(value: Any) -> bool:
    return isinstance(value, (Route, FlowQuestion, FlowDefinition, str)) or value is None


def _as_spec(value: RouteSpec) -> RouteSpec:
    if not (_is_target(value) or callable(value)):
        raise StrategyError(f"a route must be a route, a question, a message, None or a callable, got {value!r}")
    return value


def _resolve_or_none(spec: RouteSpec, state: Any) -> Route | None:
    for _ in range(_MAX_RESOLVE):
        if _is_target(spec):
            break
        if not callable(spec):
            raise StrategyError(f"a route resolved to {spec!r}, which is not a route, a question or a message")
        spec = spec(state)
    else:
        raise StrategyError(f"route callables kept returning callables ({_MAX_RESOLVE} deep)")
    if spec is None or isinstance(spec, Route):
        return spec
    if isinstance(spec, FlowQuestion):
        return route_question(spec)
    if isinstance(spec, FlowDefinition):
        return route_question(spec.root)
    return route_message(spec)


def _resolve(spec: RouteSpec, state: Any) -> Route:
    return _resolve_or_none(spec, state) or route_noop()


@dataclass
class _FlowRun:
    question: FlowQuestion
    state: RequestState
    asked: int = 1
    done: bool = False
    auto: str | None = None  # an auto-answer for the current question, used instead of asking

    @property
    def variables(self) -> Vars:
        return self.state.answers

    def enter(self, question: FlowQuestion, request_id: str, tokenizer: Any) -> None:
        self.question = self.state.current_question = question
        self.auto = question.auto_answer(self.state)
        if self.auto is None:
            question.self_prompt.start(request_id, tokenizer)


@dataclass
class FlowDefinition:
    """A named flow from `root` with its own summary (`route_summary()` without a template inside
    this flow renders `summary_builder(state)`)."""

    name: str
    root: FlowQuestion
    summary_builder: Callable[[RequestState], str]

    def all_questions(self) -> list[FlowQuestion]:
        """The questions reachable from `root` through `.on`/`.then`/`.otherwise` routes."""
        return _reachable(self.root)


def _reachable(root: FlowQuestion) -> list[FlowQuestion]:
    seen: dict[int, FlowQuestion] = {}
    stack = [root]
    while stack:
        q = stack.pop()
        if id(q) in seen:
            continue
        seen[id(q)] = q
        for spec in [*q._on.values(), q._then, q._otherwise]:  # callables resolve per request: skipped
            if isinstance(spec, FlowQuestion):
                stack.append(spec)
            elif isinstance(spec, FlowDefinition):
                stack.append(spec.root)
            elif isinstance(spec, Route) and spec.question is not None:
                stack.append(spec.question)
    return list(seen.values())


class FlowEngine:
    """Drives a flow per request; call `handle_event` from a mod for every event.

    `flows` (name → `FlowDefinition`) supply summaries; `state_factory(request_id)` builds each
    request's state (a `RequestState` or anything with the same `answers`/`data` attributes)."""

    def __init__(
        self,
        entry_question: FlowQuestion,
        *,
        max_questions: int = 64,
        flows: Mapping[str, FlowDefinition] | None = None,
        state_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.entry_question = entry_question
        self.max_questions = max_questions
        self.flows = dict(flows or {})
        self._state_factory: Callable[[str], Any] = state_factory or RequestState
        self._runs: dict[str, _FlowRun] = {}

    def handle_event(self, event: Any, actions: ActionBuilder, tokenizer: Any) -> Action:
        if isinstance(event, Prefilled):
            # Idempotent: a run under way survives a repeated (step > 0) Prefilled.
            if event.request_id not in self._runs or event.step == 0:
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

    @property
    def _states(self) -> dict[str, Any]:
        """Request id → state; the original SDK's attribute, which its test harnesses read."""
        return {rid: run.state for rid, run in self._runs.items()}

    @property
    def _constraints(self) -> dict[str, SelfPrompt]:
        """Question name → its SelfPrompt; the original SDK's attribute, which its users' tests
        inspect (`engine._constraints[name]._states[request_id].completed`)."""
        questions = _reachable(self.entry_question) + [run.question for run in self._runs.values()]
        return {q.name: q.self_prompt for q in questions}

    def state(self, request_id: str) -> RequestState | None:
        """The request's live flow state (`answers`, `data`, `current_question`)."""
        run = self._runs.get(request_id)
        return None if run is None else run.state

    def forget(self, request_id: str) -> None:
        run = self._runs.pop(request_id, None)
        if run is not None:
            run.question.self_prompt.forget(request_id)

    def _start(self, request_id: str, tokenizer: Any) -> _FlowRun:
        state = self._state_factory(request_id)
        if not isinstance(getattr(state, "answers", None), dict):
            raise StrategyError(f"state_factory must return a state with an `answers` dict, got {state!r}")
        run = _FlowRun(self.entry_question, state)
        self._runs[request_id] = run
        run.enter(self.entry_question, request_id, tokenizer)
        return run

    def _forward(self, event: ForwardPass, actions: ActionBuilder, tokenizer: Any) -> Action:
        rid = event.request_id
        run = self._runs.get(rid) or self._start(rid, tokenizer)
        while not run.done:
            sp = run.question.self_prompt
            if run.auto is not None:
                answer, run.auto = run.auto, None
            else:
                if not sp.is_finished(rid):
                    action = sp.handle_forward_pass(event, actions, tokenizer)
                    if not (sp.is_finished(rid) and isinstance(action, Noop)):
                        return action
                    # answered with nothing left to erase: route in this same step
                answer = sp.answer(rid)
            run.question.record(answer, run.variables, run.state)
            sp.forget(rid)
            route = run.question.route_for(answer, run.variables, run.state)
            if route.kind != "question":
                run.done = True
                run.state.current_question = None
                return self._finish_route(route, run, actions, tokenizer)
            if run.asked >= self.max_questions:
                return actions.emit_error(f"flow asked {run.asked} questions; is there a routing loop?")
            assert route.question is not None
            run.asked += 1
            run.enter(route.question, rid, tokenizer)
        return actions.noop()

    def _finish_route(self, route: Route, run: _FlowRun, actions: ActionBuilder, tokenizer: Any) -> Action:
        variables = run.variables

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False))

        if route.kind == "message" and route.text is not None:
            tokens = encode(_render(route.text, variables))
            return actions.force_tokens(tokens) if tokens else actions.noop()
        if route.kind == "summary" and not route.text:
            for flow in self.flows.values():
                if any(q is run.question for q in flow.all_questions()):
                    text = flow.summary_builder(run.state)
                    return actions.force_tokens(encode(text)) if text else actions.noop()
        if route.kind == "summary":
            text = (
                _render(route.text, variables) if route.text else "".join(f"{k}: {v}\n" for k, v in variables.items())
            )
            return actions.force_tokens(encode(text)) if text else actions.noop()
        if route.kind == "output" and route.text is not None:
            return actions.force_output(encode(_render(route.text, variables)))
        if route.kind == "tool" and route.callback is not None:
            result: Action = route.callback(actions, run.state, tokenizer)
            return result
        if route.kind == "tool" and route.tool_name:
            args = route.arguments(dict(variables)) if callable(route.arguments) else dict(route.arguments or {})
            return actions.tool_calls({"name": route.tool_name, "arguments": args})
        return actions.noop()
