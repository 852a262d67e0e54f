"""Forcing from `Added`, as the original engine does it: the forced (or reinjected) tokens join the
output in the same step without an `Added` of their own, and the mod's next event is the next
step's `ForwardPass`, whose logits follow them. Mods are written the way the original's users
write them: `(event, actions, tokenizer)`, state in a module-level dict, text from `added_tokens`."""

from __future__ import annotations

from typing import Any

from quote_mod_sdk import Added, ForwardPass, mod
from quote_mod_sdk.testing import RandomLogits, ScriptedLogits, Simulator


def simulate(tokenizer: Any, handler: Any, script: str | None, max_tokens: int = 12) -> Any:
    """With a script the "model" says it (and ends once a mod diverges); without, it rambles."""
    eos = tokenizer.eos_token_id
    logits = ScriptedLogits(tokenizer, script, eos_token_id=eos) if script else RandomLogits(banned=(eos,))
    return Simulator(tokenizer, logits).run(handler, "Say hello.", max_tokens=max_tokens)


def test_tokens_forced_from_added_get_no_added_and_the_next_forward_pass_follows_them(tokenizer) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, str] = {}
    world = tokenizer.encode(" world", add_special_tokens=False)

    @mod
    def hello_world(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        if isinstance(event, Added) and not event.forced:
            text = seen.get(event.request_id, "") + tokenizer.decode(event.added_tokens)
            seen[event.request_id] = text
            if text.endswith("hello"):
                return actions.force_tokens(world)
        return actions.noop()

    result = simulate(tokenizer, hello_world, " hello there", max_tokens=6)
    assert result.text.startswith(" hello world") and result.error is None
    forced = [r for r in result.trace.tokens if r.forced]
    assert [r.token for r in forced] == world and len({r.step for r in forced}) == 1
    events = result.events
    forcing = next(i for i, e in enumerate(events) if isinstance(e, Added) and e.step == forced[0].step)
    assert isinstance(events[forcing + 1], ForwardPass) and events[forcing + 1].step == forced[0].step + 1
    assert not any(isinstance(e, Added) and e.added_tokens == world for e in events)


def test_forcing_on_every_added_interleaves_with_sampling_and_never_loops(tokenizer) -> None:  # type: ignore[no-untyped-def]
    literal = tokenizer.encode(" one two three four five six", add_special_tokens=False)
    position: dict[str, int] = {}

    @mod
    def walk_literal(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        if isinstance(event, Added):
            i = position.get(event.request_id, 0)
            position[event.request_id] = i + 1
            return actions.force_tokens([literal[i % len(literal)]])
        return actions.noop()

    result = simulate(tokenizer, walk_literal, None, max_tokens=12)
    assert result.error is None and result.finish_reason == "length" and len(result.tokens) == 12
    assert [r.forced for r in result.trace.tokens] == [False, True] * 6
    assert [r.token for r in result.trace.tokens if r.forced] == literal[:6]
    assert all(e.forced is False for e in result.events if isinstance(e, Added))
    assert result.forward_calls == 6  # the forced token rides with the next forward (one extend)


def test_tokens_reinjected_by_a_backtrack_from_added_get_no_added_either(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ok = tokenizer.encode(" ok", add_special_tokens=False)

    @mod
    def rewrite_third(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        if isinstance(event, Added) and event.step == 3:
            return actions.backtrack(1, ok)
        return actions.noop()

    result = simulate(tokenizer, rewrite_third, None, max_tokens=6)
    assert result.error is None
    assert ok == result.tokens[2 : 2 + len(ok)]
    assert not any(isinstance(e, Added) and e.added_tokens == ok for e in result.events)
    after = result.events.index(next(e for e in result.events if isinstance(e, Added) and e.step == 3)) + 1
    assert isinstance(result.events[after], ForwardPass) and result.events[after].step == 4
