"""What a mod did to a request, read off its trace: the input to spans and metrics alike.

The SDK's request loop records every mod call (`ModCall`: step, event, action, latency, detail).
An *intervention* is a call that changed something — any action but `noop` — or one that
failed. Spans get one event per intervention and metrics count them, so both read this module
instead of each interpreting `ModCall.detail` on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from quote_mod_sdk.generation import ModCall, RequestTrace

__all__ = ["Intervention", "TokenCounts", "intervention_of", "interventions", "token_counts"]


@dataclass(frozen=True, slots=True)
class Intervention:
    """One mod call that acted: where, what, how many tokens it forced and erased, how long it took."""

    step: int
    event: str  # Prefilled, ForwardPass, Sampled, Added
    action: str  # force_tokens, backtrack, adjust_logits, … (noop only when the call failed)
    latency_ms: float
    forced: int = 0  # tokens it appended without sampling (forced, reinjected, forced output)
    erased: int = 0  # output tokens it erased (a backtrack, after the runtime's cap)
    tools: tuple[str, ...] = ()  # tool names, for tool_calls
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Token totals of a finished request, as the trace (the ground truth) has them."""

    prompt: int
    completion: int  # what the client got: neither erased nor the stop token
    forced: int  # every forced token, erased later or not
    erased: int  # every token erased (backtracks, forced output, trimming at a stop)


def intervention_of(call: ModCall) -> Intervention | None:
    """The intervention a mod call made, or None for a successful noop."""
    if call.action == "noop" and call.error is None:
        return None
    detail = call.detail
    forced = int(detail.get("reinject", 0)) if call.action == "backtrack" else 0
    if call.action in ("force_tokens", "force_output"):
        forced = int(detail.get("tokens", 0))
    erased = int(detail.get("clamped_to", detail.get("n", 0))) if call.action == "backtrack" else 0
    return Intervention(
        step=call.step,
        event=call.event,
        action=call.action,
        latency_ms=call.latency_ms,
        forced=forced,
        erased=erased,
        tools=tuple(detail.get("tools", ())),
        error=call.error,
    )


def interventions(trace: RequestTrace) -> list[Intervention]:
    """Every intervention of a request, in the order the mod made them."""
    return [i for i in map(intervention_of, trace.mod_calls) if i is not None]


def token_counts(trace: RequestTrace) -> TokenCounts:
    completion = forced = erased = 0
    for record in trace.tokens:
        forced += record.forced
        erased += record.erased
        completion += not (record.erased or record.stop)
    return TokenCounts(len(trace.prompt_tokens), completion, forced, erased)
