"""The SGLang plugin: hooks registered through `sglang.srt.plugins` (entry point `quote`).

SGLang calls `load_plugins()` early in every process it starts (engine, scheduler, workers) and
runs each `sglang.srt.plugins` entry point; `register` adds AROUND hooks to its `HookRegistry`,
which SGLang then applies (monkey-patching by dotted path: no fork, nothing pickled). Every hook
asks for the process's active `SchedulerBridge` first; when Quote drives no scheduler in this
process (plain `sglang serve` with Quote installed) it calls the original and nothing changes.

    target (sglang 0.5.17)                                   bridge method
    SchedulerRequestReceiver.recv_requests                   on_recv        new requests, aborts
    Scheduler.run_batch                                      begin/end_batch
    ModelRunner.sample                                       sample         ForwardPass … plans
    Scheduler.process_batch_result                           after_result   trim, requeue, publish
    SchedulerOutputStreamer.stream_output                    on_stream      Quote streams its own
    SenderWrapper.send_output                                on_output      aborts; drop the rest
    Scheduler.maybe_sleep_on_idle                            wait_for_work
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from quote_serving.engine.sglang.bridge import active_bridge

__all__ = ["HOOKS", "IDLE_WAIT_S", "register"]

IDLE_WAIT_S = 0.05  # an idle scheduler wakes at once on a new request; this only bounds stop() latency

_M = "sglang.srt.managers"


def _recv_requests(original: Callable[..., Any], receiver: Any, *args: Any, **kwargs: Any) -> Any:
    received = original(receiver, *args, **kwargs)
    bridge = active_bridge()
    if bridge is None:
        return received
    return [*(received or []), *bridge.on_recv()]


def _run_batch(original: Callable[..., Any], scheduler: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
    bridge = active_bridge()
    if bridge is None:
        return original(scheduler, batch, *args, **kwargs)
    bridge.begin_batch(batch)
    try:
        return original(scheduler, batch, *args, **kwargs)
    finally:
        bridge.end_batch()


def _sample(
    original: Callable[..., Any], runner: Any, logits_output: Any, forward_batch: Any, *a: Any, **kw: Any
) -> Any:
    bridge = active_bridge()
    if bridge is None:
        return original(runner, logits_output, forward_batch, *a, **kw)
    ours = bridge.sample(logits_output.next_token_logits, getattr(forward_batch, "rids", None))
    if ours is None:
        return original(runner, logits_output, forward_batch, *a, **kw)
    foreign = bridge.foreign_rows()
    if not foreign:
        return ours
    # A batch mixing in requests Quote does not own: SGLang samples those (after Quote's mods
    # have read the raw logits; its sampler edits them in place), Quote's rows keep Quote's tokens.
    theirs = original(runner, logits_output, forward_batch, *a, **kw)
    mine = [i for i in range(ours.shape[0]) if i not in set(foreign)]
    index = _index(mine, theirs.device)
    return theirs.index_copy(0, index, ours.index_select(0, index).to(theirs.dtype))


def _process_batch_result(original: Callable[..., Any], scheduler: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
    result = original(scheduler, batch, *args, **kwargs)
    bridge = active_bridge()
    if bridge is not None:
        bridge.after_result(scheduler, batch)
    return result


def _stream_output(original: Callable[..., Any], streamer: Any, reqs: Any, *args: Any, **kwargs: Any) -> Any:
    bridge = active_bridge()
    if bridge is None:
        return original(streamer, reqs, *args, **kwargs)
    foreign = bridge.on_stream(reqs)
    return original(streamer, foreign, *args, **kwargs) if foreign else None


def _send_output(original: Callable[..., Any], sender: Any, output: Any, *args: Any, **kwargs: Any) -> Any:
    bridge = active_bridge()
    if bridge is None:
        return original(sender, output, *args, **kwargs)
    bridge.on_output(output)  # in-process, no tokenizer or detokenizer listens: nothing is sent
    return None


def _maybe_sleep_on_idle(original: Callable[..., Any], scheduler: Any, *args: Any, **kwargs: Any) -> Any:
    bridge = active_bridge()
    if bridge is None:
        return original(scheduler, *args, **kwargs)
    bridge.wait_for_work(IDLE_WAIT_S)
    return None


def _index(rows: list[int], device: Any) -> Any:
    import torch

    return torch.tensor(rows, dtype=torch.int64, device=device)


HOOKS: dict[str, Callable[..., Any]] = {
    f"{_M}.scheduler_components.request_receiver.SchedulerRequestReceiver.recv_requests": _recv_requests,
    f"{_M}.scheduler.Scheduler.run_batch": _run_batch,
    "sglang.srt.model_executor.model_runner.ModelRunner.sample": _sample,
    f"{_M}.scheduler.Scheduler.process_batch_result": _process_batch_result,
    f"{_M}.scheduler_components.output_streamer.SchedulerOutputStreamer.stream_output": _stream_output,
    f"{_M}.scheduler_components.output_sender.SenderWrapper.send_output": _send_output,
    f"{_M}.scheduler.Scheduler.maybe_sleep_on_idle": _maybe_sleep_on_idle,
}

_registered = False
_lock = threading.Lock()


def register() -> None:
    """Entry point of `sglang.srt.plugins`: register Quote's hooks (idempotent, no side effect else)."""
    global _registered
    with _lock:
        if _registered:
            return
        from sglang.srt.plugins.hook_registry import HookRegistry, HookType

        for target, hook in HOOKS.items():
            HookRegistry.register(target, hook, HookType.AROUND)
        _registered = True
