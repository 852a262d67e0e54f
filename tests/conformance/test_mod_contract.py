"""SPEC.md's contract, checked on every engine backend through the ModRuntime."""

from __future__ import annotations

from typing import Any

import torch

from quote_mod_sdk import Added, Finished, ForwardPass, Prefilled, Sampled, mod
from quote_mod_sdk.testing import Simulator

from .conftest import Engine


class OutputTracker:
    """What a mod can know of its output: tokens from Added, minus what it backtracked."""

    def __init__(self) -> None:
        self.output: list[int] = []
        self.prompt: list[int] = []

    def see(self, event: Any) -> None:
        if isinstance(event, Prefilled):
            self.prompt = list(event.context_info.tokens)
        elif isinstance(event, Added):
            self.output.extend(event.added_tokens)


def test_backtrack_reinject_logits_equal_a_from_scratch_recompute(engine: Engine) -> None:
    tracker, captured = OutputTracker(), {}
    reinject = engine.tokenizer.encode(" yes", add_special_tokens=False)

    @mod
    def rewind(event, actions):  # type: ignore[no-untyped-def]
        tracker.see(event)
        if isinstance(event, ForwardPass) and event.step == 6:
            del tracker.output[-3:]
            return actions.backtrack(3, reinject)
        if isinstance(event, ForwardPass) and event.step == 7:
            captured["logits"] = event.logits.clone().float().cpu()
            captured["context"] = tracker.prompt + list(tracker.output)
        return None

    stats = engine.runtime.backend.stats
    computed_before = stats.tokens_computed
    ((_, snap),) = engine.run(engine.request("Say hi.", rewind, max_tokens=10))
    assert snap.error is None and len(snap.output) == 10
    expected = engine.reference_logits(captured["context"])
    assert torch.allclose(captured["logits"], expected, atol=1e-4)
    # no re-prefill: prompt once, each decode token once, plus the one-token recompute of the rollback
    prompt_len = len(tracker.prompt)
    assert stats.tokens_computed - computed_before <= prompt_len + 10 + 3 + len(reinject) + 1


def test_k_forced_tokens_cost_one_forward(engine: Engine) -> None:
    forced = engine.tokenizer.encode(" I can help you with that", add_special_tokens=False)
    assert len(forced) >= 4
    passes: list[int] = []
    stats = engine.runtime.backend.stats

    @mod
    def force(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass):
            passes.append(event.step)
            if event.step == 2:
                return actions.force_tokens(forced)
        return None

    calls, rollbacks = stats.forward_calls, stats.rollbacks
    ((_, snap),) = engine.run(engine.request("Say hi.", force, max_tokens=3 + len(forced)))
    assert list(snap.output[1 : 1 + len(forced)]) == forced
    # One model call per ForwardPass: the k forced tokens were computed by the single next call.
    # (A backend that runs ahead, forwarding a token before the mod's answers are in, takes each
    # such call back with a rollback when the answers change the token: those are not counted.)
    assert (stats.forward_calls - calls) - (stats.rollbacks - rollbacks) == len(passes)


def test_adjust_prefill_changes_what_the_model_sees(engine: Engine) -> None:
    new_prompt = engine.tokenizer.encode("Say bye. Then stop.", add_special_tokens=False)
    seen = {}

    @mod
    def rewrite(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Prefilled):
            return actions.adjust_prefill(new_prompt)
        if isinstance(event, ForwardPass) and event.step == 1:
            seen["logits"] = event.logits.clone().float().cpu()
        return None

    ((_, snap),) = engine.run(engine.request("Say hi.", rewrite, max_tokens=2))
    assert snap.prompt_tokens == len(new_prompt)
    assert torch.allclose(seen["logits"], engine.reference_logits(new_prompt), atol=1e-4)


def test_finished_fires_once_whatever_ends_the_request(engine: Engine) -> None:
    reasons: dict[str, list[str]] = {}

    def make(kind: str):  # type: ignore[no-untyped-def]
        @mod(name=kind)
        def ender(event, actions):  # type: ignore[no-untyped-def]
            if isinstance(event, Finished):
                reasons.setdefault(kind, []).append(event.reason)
            elif isinstance(event, ForwardPass) and event.step == 2:
                if kind == "error":
                    raise RuntimeError("boom")
                if kind == "tool_calls":
                    return actions.tool_calls({"name": "f"})
                if kind == "stop":
                    return actions.force_output([5, 6])
            return None

        return ender

    kinds = ["length", "error", "tool_calls", "stop"]
    engine.run(*(engine.request("Say hi.", make(k), max_tokens=4) for k in kinds))
    assert reasons == {k: [k] for k in kinds}

    aborted: list[str] = []

    @mod
    def slow(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Finished):
            aborted.append(event.reason)
        return None

    engine.run(engine.request("Say hi.", slow, max_tokens=4000 - 10), cancel_after=0.2)
    assert aborted == ["abort"]


def test_concurrent_requests_only_ever_see_their_own_events(engine: Engine) -> None:
    seen: dict[int, set[str]] = {i: set() for i in range(8)}

    def make(i: int):  # type: ignore[no-untyped-def]
        @mod(name=f"mod_{i}")
        def watcher(event, actions):  # type: ignore[no-untyped-def]
            seen[i].add(event.request_id)
            if isinstance(event, Added) and event.step == i + 1:
                return actions.force_tokens([100 + i])
            return None

        return watcher

    requests = [engine.request(f"Request number {i}.", make(i), max_tokens=12) for i in range(8)]
    results = engine.run(*requests)
    for i, (handle, snap) in enumerate(results):
        assert seen[i] == {handle.request_id}
        assert snap.error is None and 100 + i in snap.output


def test_runtime_agrees_with_the_simulator_on_every_action(engine: Engine) -> None:
    """The same mod, greedy, on the real model: runtime and simulator produce the same tokens."""
    tok = engine.tokenizer

    @mod
    def everything(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Prefilled):
            return actions.adjust_prefill(tok.encode("Say bye.", add_special_tokens=False))
        if isinstance(event, ForwardPass):
            if event.step == 2:
                return actions.force_tokens(tok.encode(" yes no", add_special_tokens=False))
            if event.step == 4:
                row = event.logits.clone()
                row[int(row.argmax())] = -1e9
                return actions.adjust_logits(row)
            if event.step == 6:
                return actions.backtrack(2, tok.encode(" ok", add_special_tokens=False))
        if isinstance(event, Sampled) and event.step == 8:
            return actions.force_tokens(tok.encode(" again", add_special_tokens=False))
        if isinstance(event, Added) and event.step == 9:
            return actions.backtrack(1)
        return None

    def model_logits(context: Any, vocab_size: int) -> Any:
        return engine.reference_logits(context).numpy()

    simulated = Simulator(tok, model_logits, vocab_size=engine.runtime.backend.vocab_size).run(
        everything, "Say hi.", max_tokens=12
    )
    ((_, snap),) = engine.run(engine.request("Say hi.", everything, max_tokens=12))
    assert list(snap.output) == simulated.tokens
    assert snap.finish_reason == simulated.finish_reason
