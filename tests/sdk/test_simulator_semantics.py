"""Every action applied exactly as SPEC.md says, through the shared request loop."""

from __future__ import annotations

from typing import Any

import pytest

from quote_mod_sdk import Added, Finished, ForwardPass, Prefilled, Sampled, mod
from quote_mod_sdk.testing import RandomLogits, ScriptedLogits, Simulator


def sim(tokenizer: Any, script: str | None = None) -> Simulator:
    if script is None:
        return Simulator(tokenizer, RandomLogits(seed=1, banned=tuple(tokenizer.all_special_ids)))
    return Simulator(tokenizer, ScriptedLogits(tokenizer, script, eos_token_id=tokenizer.eos_token_id))


def enc(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_scripted_model_without_a_mod_says_its_script(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = sim(tokenizer, " hello world.").run(None, "Say hi.")
    assert result.text == " hello world." and result.finish_reason == "stop"


def test_events_arrive_in_spec_order_and_steps_advance_by_one(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = sim(tokenizer).run(lambda e, a: None, "Say hi.", max_tokens=3)
    kinds = [type(e).__name__ for e in result.events]
    assert kinds == ["Prefilled"] + ["ForwardPass", "Sampled", "Added"] * 3 + ["Finished"]
    steps = [e.step for e in result.events if isinstance(e, ForwardPass)]
    assert steps == [1, 2, 3]
    finished = result.events[-1]
    assert isinstance(finished, Finished) and finished.reason == "length"


def test_prefilled_carries_the_prompt(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = sim(tokenizer).run(lambda e, a: None, "Say hi.", max_tokens=1)
    pre = result.events[0]
    assert isinstance(pre, Prefilled)
    assert pre.prefilled_text == "Say hi." and pre.step == 0 and pre.max_steps == 1
    assert pre.context_info.tokens[: pre.context_info._prompt_len] == enc(tokenizer, "Say hi.")
    assert pre.context_info.prompt_len == pre.tokens_so_far_len == len(enc(tokenizer, "Say hi."))


def test_adjust_prefill_changes_what_the_model_sees_and_the_budget(tokenizer) -> None:  # type: ignore[no-untyped-def]
    new_prompt = enc(tokenizer, "Say bye.")

    @mod
    def rewrite(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Prefilled):
            return actions.adjust_prefill(new_prompt, max_steps=2)

    result = sim(tokenizer).run(rewrite, "Say hi.", max_tokens=10)
    assert result.trace.prompt_tokens == new_prompt
    assert len(result.tokens) == 2 and result.finish_reason == "length"
    baseline = sim(tokenizer).run(None, "Say bye.", max_tokens=2)
    assert result.tokens == baseline.tokens  # same context → same (context-keyed) logits


def test_forced_tokens_are_marked_and_cost_one_forward(tokenizer) -> None:  # type: ignore[no-untyped-def]
    forced = enc(tokenizer, " I can help you with that")

    @mod
    def force_once(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step == 1:
            return actions.force_tokens(forced)

    result = sim(tokenizer).run(force_once, "Say hi.", max_tokens=len(forced) + 2)
    added = [e for e in result.events if isinstance(e, Added)]
    assert added[0].added_tokens == forced and added[0].forced is True
    assert all(not e.forced for e in added[1:])
    assert result.tokens[: len(forced)] == forced
    # step 1 forced k tokens without sampling; step 2's one forward computed all k of them
    assert not any(isinstance(e, Sampled) and e.step == 1 for e in result.events)
    assert result.forward_calls == 3 and result.tokens_computed == len(enc(tokenizer, "Say hi.")) + len(forced) + 1


def test_backtrack_drops_and_reinjects_without_touching_the_prompt(tokenizer) -> None:  # type: ignore[no-untyped-def]
    reinject = enc(tokenizer, " yes")

    @mod
    def rewind(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step == 4:
            return actions.backtrack(2, reinject)

    plain = sim(tokenizer).run(None, "Say hi.", max_tokens=6)
    result = sim(tokenizer).run(rewind, "Say hi.", max_tokens=6)
    assert result.tokens[:1] == plain.tokens[:1]
    assert result.tokens[1 : 1 + len(reinject)] == reinject
    assert result.erased_tokens == plain.tokens[1:3]
    assert result.rollbacks == [2]  # the engine trims exactly the erased tokens, then computes the reinjected one


def test_backtrack_never_erases_the_prompt(tokenizer) -> None:  # type: ignore[no-untyped-def]
    @mod
    def greedy_eraser(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step == 2:
            return actions.backtrack(50)

    result = sim(tokenizer).run(greedy_eraser, "Say hi.", max_tokens=3)
    assert result.trace.prompt_tokens == enc(tokenizer, "Say hi.")
    assert result.mod_calls[[c.event for c in result.mod_calls].index("ForwardPass") + 3].detail["clamped_to"] == 1


def test_force_on_sampled_replaces_the_sampled_token(tokenizer) -> None:  # type: ignore[no-untyped-def]
    @mod
    def swap(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Sampled) and event.step == 1:
            return actions.force_tokens([500, 501])

    result = sim(tokenizer).run(swap, "Say hi.", max_tokens=3)
    assert result.tokens[:2] == [500, 501]


def test_force_output_ends_with_exactly_those_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    final = enc(tokenizer, "Ok!")

    @mod
    def done(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Added) and event.step == 3:
            return actions.force_output(final)

    result = sim(tokenizer).run(done, "Say hi.", max_tokens=20)
    assert result.tokens == final and result.text == "Ok!" and result.finish_reason == "stop"
    assert len(result.erased_tokens) == 3


def test_tool_calls_end_the_request(tokenizer) -> None:  # type: ignore[no-untyped-def]
    @mod
    def call(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Prefilled):
            return actions.tool_calls({"name": "search", "arguments": {"q": "x"}})

    result = sim(tokenizer).run(call, "Say hi.")
    assert result.finish_reason == "tool_calls" and result.tokens == []
    assert result.tool_calls and result.tool_calls[0]["function"] == {"name": "search", "arguments": '{"q": "x"}'}


def _raise(event: Any, actions: Any) -> None:
    raise RuntimeError("boom")


FAILURES = [
    (_raise, "RuntimeError: boom"),
    (lambda e, a: a.adjust_prefill([1]), "adjust_prefill is not allowed on ForwardPass"),
    (lambda e, a: 42, "returned int"),
    (lambda e, a: a.emit_error("refused by policy"), "refused by policy"),
    (lambda e, a: a.force_tokens([10**9]), "outside the vocabulary"),
    (lambda e, a: a.adjust_logits([1.0, 2.0]), "row of size"),
]


@pytest.mark.parametrize(("failure", "message"), FAILURES)
def test_mod_failures_fail_only_the_request_and_name_the_mod(tokenizer, failure, message: str) -> None:  # type: ignore[no-untyped-def]
    finished: list[Finished] = []

    def handler(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Finished):
            finished.append(event)
        if isinstance(event, ForwardPass) and event.step == 2:
            return failure(event, actions)
        return None

    result = sim(tokenizer).run(mod(handler, name="broken_mod"), "Say hi.", max_tokens=5)
    assert result.finish_reason == "error"
    assert "broken_mod" in (result.error or "") and message in (result.error or "")
    assert [f.reason for f in finished] == ["error"]
    assert len(result.tokens) == 1  # what step 1 produced is kept; nothing after the failure


def test_finished_fires_once_for_every_ending(tokenizer) -> None:  # type: ignore[no-untyped-def]
    for max_tokens, script in [(2, None), (50, " short.")]:
        result = sim(tokenizer, script).run(lambda e, a: None, "Say hi.", max_tokens=max_tokens)
        assert sum(isinstance(e, Finished) for e in result.events) == 1


def test_stop_strings_cut_the_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = sim(tokenizer, " hello world. more text").run(None, "Say hi.", stop=["world"])
    assert result.text == " hello " and result.finish_reason == "stop"


def test_adjust_logits_with_zero_temperature_takes_the_argmax(tokenizer) -> None:  # type: ignore[no-untyped-def]
    @mod
    def pick(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass):
            row = event.logits.clone()
            row[:] = 0.0
            row[123] = 1.0
            return actions.adjust_logits(row, token_temp=0)

    result = Simulator(tokenizer, RandomLogits(3), temperature=1.0).run(pick, "x", max_tokens=4)
    assert result.tokens == [123] * 4


def test_an_added_handler_rewriting_the_same_tail_every_step_terminates(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tail = enc(tokenizer, " again")

    @mod
    def rewrite_forever(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Added) and event.step >= 2:
            return actions.backtrack(len(tail), tail)

    result = sim(tokenizer).run(rewrite_forever, "Say hi.", max_tokens=8)
    assert result.finish_reason in ("length", "stop") and result.error is None


def test_endless_forcing_from_added_is_bounded_by_max_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    @mod
    def force_forever(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Added):
            return actions.force_tokens([300])

    result = sim(tokenizer).run(force_forever, "Say hi.", max_tokens=10)
    assert len(result.tokens) == 10 and result.finish_reason == "length"


def test_top_logprobs_are_traced_for_sampled_tokens(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = sim(tokenizer).run(None, "Say hi.", max_tokens=3, top_logprobs=3)
    for record in result.trace.tokens:
        assert len(record.top_logprobs) == 3 and record.top_logprobs[0][0] == record.token
        assert record.top_logprobs[0][1] <= 0.0
