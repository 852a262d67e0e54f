"""Actions a mod returns, the one table of which event may return which, and `ActionBuilder`.

The table `VALID_ACTIONS` is the single source of truth: `@mod` checks every returned action
against it, and the request loop relies on that check having happened.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from quote_mod_sdk.errors import InvalidActionError
from quote_mod_sdk.events import Added, Finished, ForwardPass, Prefilled, Sampled

# Actions are frozen but not slotted: the original SDK's actions are plain objects, and its users
# print `action.__dict__` / `vars(action)` to see what a mod returned.


@dataclass(frozen=True)
class Noop:
    """Do nothing."""


@dataclass(frozen=True)
class AdjustPrefill:
    """Replace the prompt tokens before prefill; optionally change the step budget."""

    tokens: list[int]
    max_steps: int | None = None


@dataclass(frozen=True)
class AdjustLogits:
    """Replace this step's logits row; `token_temp` overrides the temperature (0 = argmax)."""

    logits: Any = None
    token_temp: float | None = None


@dataclass(frozen=True)
class ForceTokens:
    """Append tokens as if sampled (one forward for all of them)."""

    tokens: list[int]


@dataclass(frozen=True)
class Backtrack:
    """Drop the last `n` output tokens (never the prompt), then force `reinject_tokens`."""

    n: int
    reinject_tokens: list[int] | None = None

    @property
    def tokens(self) -> list[int] | None:
        """The original SDK's name for `reinject_tokens`."""
        return self.reinject_tokens


@dataclass(frozen=True)
class ForceOutput:
    """End the request; its whole output is exactly `tokens`."""

    tokens: list[int]


@dataclass(frozen=True)
class ToolCalls:
    """End the request with OpenAI `tool_calls` (already normalised)."""

    calls: list[dict[str, Any]]

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The original SDK's name for `calls`."""
        return self.calls


@dataclass(frozen=True)
class EmitError:
    """End the request with an error naming the mod."""

    message: str

    @property
    def err_str(self) -> str:
        """The original SDK's name for `message`."""
        return self.message


Action = Noop | AdjustPrefill | AdjustLogits | ForceTokens | Backtrack | ForceOutput | ToolCalls | EmitError
# The original SDK's names for the same classes (one implementation serves both spellings).
ModAction = Action
AdjustedLogits = AdjustLogits
AdjustedPrefill = AdjustPrefill

_ANY_LIVE_EVENT = frozenset({Prefilled, ForwardPass, Sampled, Added})
VALID_ACTIONS: Mapping[type, frozenset[type]] = {
    Noop: _ANY_LIVE_EVENT | {Finished},
    AdjustPrefill: frozenset({Prefilled}),
    AdjustLogits: frozenset({ForwardPass}),
    ForceTokens: frozenset({ForwardPass, Sampled, Added}),
    Backtrack: frozenset({ForwardPass, Sampled, Added}),
    ForceOutput: _ANY_LIVE_EVENT,
    ToolCalls: _ANY_LIVE_EVENT,
    EmitError: _ANY_LIVE_EVENT,
}

ACTION_NAMES: Mapping[type, str] = {
    Noop: "noop",
    AdjustPrefill: "adjust_prefill",
    AdjustLogits: "adjust_logits",
    ForceTokens: "force_tokens",
    Backtrack: "backtrack",
    ForceOutput: "force_output",
    ToolCalls: "tool_calls",
    EmitError: "emit_error",
}

NOOP = Noop()


def action_name(action: object) -> str:
    return ACTION_NAMES.get(type(action), type(action).__name__)


def validate_action(event: object, action: object) -> Action:
    """Return `action` (None → noop) if `event` may return it; else raise `InvalidActionError`."""
    if action is None:
        return NOOP
    event_name = type(event).__name__
    allowed = VALID_ACTIONS.get(type(action))
    if allowed is None:
        raise InvalidActionError(
            f"{event_name} handler returned {type(action).__name__!s} ({action!r:.80}), which is not an "
            "action; return one built by `actions` (e.g. actions.noop())",
            event=event_name,
            action=type(action).__name__,
        )
    if type(event) not in allowed:
        legal = sorted(ACTION_NAMES[a] for a, events in VALID_ACTIONS.items() if type(event) in events)
        raise InvalidActionError(
            f"{action_name(action)} is not allowed on {event_name}; {event_name} may return: {', '.join(legal)}",
            event=event_name,
            action=action_name(action),
        )
    return action  # type: ignore[return-value]


def token_list(tokens: Any, *, what: str = "tokens") -> list[int]:
    """Coerce a list/tuple/numpy/torch sequence of token ids to `list[int]`, or raise clearly."""
    if hasattr(tokens, "tolist"):
        tokens = tokens.tolist()
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
        raise InvalidActionError(f"{what} must be a list of token ids, got {type(tokens).__name__}")
    out: list[int] = []
    for t in tokens:
        if isinstance(t, bool) or (not isinstance(t, int) and not (hasattr(t, "__index__"))):
            raise InvalidActionError(f"{what} must contain integer token ids, got {t!r:.40}")
        value = int(t)
        if value < 0:
            raise InvalidActionError(f"{what} must contain non-negative token ids, got {value}")
        out.append(value)
    return out


def normalize_tool_calls(payload: Any) -> list[dict[str, Any]]:
    """OpenAI `tool_calls` from a dict or list, flat (`name`, `arguments`) or nested (`function`)."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidActionError("tool_calls payload is empty; pass at least one call")
    return [_normalize_tool_call(item) for item in items]


def _normalize_tool_call(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidActionError(f"each tool call must be a dict, got {type(item).__name__}")
    function = item.get("function", item)
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidActionError("each tool call needs a function name: {'name': ..., 'arguments': {...}}")
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        try:
            arguments = json.dumps(arguments)
        except (TypeError, ValueError) as exc:
            raise InvalidActionError(f"tool call {name!r} arguments are not JSON-serialisable: {exc}") from exc
    call_id = item.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    return {"id": str(call_id), "type": "function", "function": {"name": name, "arguments": arguments}}


class ActionBuilder:
    """Builds actions; stateless, so one instance serves every request.

    Keyword aliases from the public docs are accepted: `backtrack(steps=, tokens=)`,
    `backtrack(n=, replacement=)`, `adjusted_logits(...)`.

    The original SDK binds a builder to one event (`ActionBuilder(event)`, `for_event(event)`) and
    refuses, when an action is built, what that event may not return; an unbound builder leaves
    that check to `validate_action`, which `@mod` always runs.
    """

    __slots__ = ("_event",)

    def __init__(self, event: object = None) -> None:
        self._event = event

    def _require(self, action_type: type, method: str) -> None:
        if self._event is not None and type(self._event) not in VALID_ACTIONS[action_type]:
            raise InvalidActionError(
                f"Action '{method}' not permitted for event type {type(self._event).__name__}",
                event=type(self._event).__name__,
                action=method,
            )

    def noop(self) -> Noop:
        return NOOP

    def adjust_prefill(self, tokens: Any, max_steps: int | None = None) -> AdjustPrefill:
        self._require(AdjustPrefill, "adjust_prefill")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 0):
            raise InvalidActionError(f"adjust_prefill max_steps must be a non-negative int, got {max_steps!r}")
        return AdjustPrefill(token_list(tokens, what="adjust_prefill tokens"), max_steps)

    def adjust_logits(self, logits: Any = None, token_temp: float | None = None) -> AdjustLogits:
        self._require(AdjustLogits, "adjust_logits")
        if logits is None and token_temp is None and self._event is not None:
            logits = getattr(self._event, "logits", None)  # the original defaults to the event's row
        if logits is None and token_temp is None:
            raise InvalidActionError("adjust_logits needs logits, token_temp, or both")
        if token_temp is not None and (not isinstance(token_temp, (int, float)) or token_temp < 0):
            raise InvalidActionError(f"token_temp must be a number >= 0, got {token_temp!r}")
        return AdjustLogits(logits, None if token_temp is None else float(token_temp))

    adjusted_logits = adjust_logits

    def force_tokens(self, tokens: Any) -> ForceTokens:
        self._require(ForceTokens, "force_tokens")
        forced = token_list(tokens, what="force_tokens tokens")
        if not forced:
            raise InvalidActionError("force_tokens needs at least one token; return actions.noop() instead")
        return ForceTokens(forced)

    def backtrack(
        self,
        n: int | None = None,
        reinject_tokens: Any = None,
        *,
        steps: int | None = None,
        tokens: Any = None,
        replacement: Any = None,
    ) -> Backtrack:
        self._require(Backtrack, "backtrack")
        count = next((v for v in (n, steps) if v is not None), None)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidActionError(f"backtrack needs a token count n >= 0, got {count!r}")
        reinject = next((v for v in (reinject_tokens, tokens, replacement) if v is not None), None)
        return Backtrack(count, None if reinject is None else token_list(reinject, what="backtrack reinject_tokens"))

    def force_output(self, tokens: Any) -> ForceOutput:
        self._require(ForceOutput, "force_output")
        return ForceOutput(token_list(tokens, what="force_output tokens"))

    def tool_calls(self, payload: Any) -> ToolCalls:
        self._require(ToolCalls, "tool_calls")
        return ToolCalls(normalize_tool_calls(payload))

    def emit_error(self, message: str) -> EmitError:
        return EmitError(str(message))


def for_event(event: object) -> ActionBuilder:
    """An `ActionBuilder` bound to `event` (the original SDK's spelling)."""
    return ActionBuilder(event)
