"""The plugin: its entry point, what it registers, and that it changes nothing without Quote's bridge."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from quote_serving.engine.port import EngineStats
from quote_serving.engine.sglang import plugin
from quote_serving.engine.sglang.bridge import SchedulerBridge, activate, active_bridge, deactivate

REPO = Path(__file__).resolve().parents[2]


def test_the_entry_point_is_declared_for_sglangs_plugin_loader() -> None:
    lines = [line.split("#")[0].strip() for line in (REPO / "pyproject.toml").read_text().splitlines()]
    section = lines.index('[project.entry-points."sglang.srt.plugins"]')
    assert lines[section + 1] == 'quote = "quote_serving.engine.sglang.plugin:register"'
    module, _, function = lines[section + 1].split('"')[1].partition(":")
    assert getattr(__import__(module, fromlist=[function]), function) is plugin.register


def test_register_adds_one_around_hook_per_target_once(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[tuple[str, Any, str]] = []

    class HookType:
        AROUND = "around"

    class HookRegistry:
        @staticmethod
        def register(target: str, hook: Any, hook_type: str) -> None:
            registered.append((target, hook, hook_type))

    fake = types.ModuleType("sglang.srt.plugins.hook_registry")
    fake.HookRegistry, fake.HookType = HookRegistry, HookType  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sglang.srt.plugins.hook_registry", fake)
    monkeypatch.setattr(plugin, "_registered", False)
    plugin.register()
    plugin.register()
    assert [(t, h) for t, h, _ in registered] == list(plugin.HOOKS.items())
    assert {kind for _, _, kind in registered} == {"around"}
    assert all(t.startswith("sglang.srt.") for t in plugin.HOOKS)


@pytest.mark.parametrize("target", sorted(plugin.HOOKS))
def test_every_hook_is_transparent_without_a_bridge(target: str) -> None:
    assert active_bridge() is None
    calls: list[tuple[Any, ...]] = []

    def original(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "original result"

    args = (object(), object(), object())
    assert plugin.HOOKS[target](original, *args, flag=True) == "original result"
    assert calls == [(args, {"flag": True})]


class _Host:
    def admit(self) -> list[Any]:
        return []

    def cancelled(self) -> list[Any]:
        return []

    def publish(self, live: Any, *, forwarded_ns: int, ended_ns: int) -> None: ...

    def fail(self, live: Any, message: str, kind: str) -> None: ...


def test_batches_mixing_foreign_requests_let_sglang_sample_those(tokenizer: Any) -> None:
    from quote_mod_sdk.generation import Generation
    from quote_serving.engine.sampling import SamplingParams

    vocab = len(tokenizer)
    bridge = SchedulerBridge(_Host(), vocab_size=vocab, stats=EngineStats())
    gen = Generation(request_id="mine", prompt_tokens=[5, 6], tokenizer=tokenizer, vocab_size=vocab)
    gen.prefill()
    bridge.table.track("mine", SimpleNamespace(gen=gen, sampling=SamplingParams(temperature=0), generator=None))
    reqs = [SimpleNamespace(rid="theirs", is_retracted=False), SimpleNamespace(rid="mine", is_retracted=False)]
    batch = SimpleNamespace(reqs=reqs, forward_mode=SimpleNamespace(is_decode=lambda: True), extend_num_tokens=0)
    logits = torch.zeros(2, vocab)
    logits[1, 9] = 5.0
    activate(bridge)
    try:
        bridge.begin_batch(batch)
        tokens = plugin._sample(
            lambda *_: torch.tensor([777, 778]),
            None,
            SimpleNamespace(next_token_logits=logits),
            SimpleNamespace(rids=["theirs", "mine"]),
        )
    finally:
        deactivate(bridge)
    assert tokens.tolist() == [777, 9]
    assert gen.output == [9]


def test_one_in_process_engine_per_process() -> None:
    first = SchedulerBridge(_Host(), vocab_size=8, stats=EngineStats())
    activate(first)
    try:
        with pytest.raises(RuntimeError, match="already runs in this process"):
            activate(SchedulerBridge(_Host(), vocab_size=8, stats=EngineStats()))
    finally:
        deactivate(first)
    assert active_bridge() is None
