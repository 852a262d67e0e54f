"""`SGLangModRuntime`: the mod runtime whose engine thread runs SGLang's scheduler loop.

It is a `ModRuntime` (same `submit`/`start`/`stop`, handles, snapshots, traces, observers and mod
budgets, so the API, streaming holdback and Ray Serve use it unchanged) whose engine thread, instead
of stepping an `EngineBackend`, builds SGLang's `Scheduler` in-thread and runs its event loop:

    submit() ─► pending queue ─► [recv hook] admit: Generation.prefill() (Prefilled, adjust_prefill)
                                  │           then SGLang gets the (possibly rewritten) prompt
    SGLang schedules prefill/decode batches (radix cache, chunked prefill, memory, CUDA graphs)
                                  │
        [sample hook] ForwardPass → edits → sampling → Sampled/Added → plans   (bridge + step)
        [result hook] trim / requeue / finish → snapshot published to the handle

Requests, timings and completion go through `ModRuntime`'s public per-request lifecycle
(`admit_next`, `record_step`, `snapshot`, `complete`, `fail`, `fail_all`): the two runtimes cannot
drift in what a client sees.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from quote_serving.engine.port import EngineError, EngineStats
from quote_serving.engine.sglang.bridge import SchedulerBridge, activate, active_bridge, deactivate
from quote_serving.engine.sglang.scheduler_ops import SchedulerOps
from quote_serving.engine.sglang.settings import SGLangEngineSettings
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.observers import RuntimeObserver
from quote_serving.runtime.requests import RequestHandle
from quote_serving.runtime.traces import TraceStore

__all__ = ["SGLangBackendView", "SGLangModRuntime", "SGLangStartError"]

logger = logging.getLogger(__name__)


class SGLangStartError(EngineError):
    """Raised by `start()` when SGLang's scheduler could not be built (model, memory, kernels)."""


class SGLangBackendView:
    """The `EngineBackend` face `ModRuntime` keeps: vocabulary, counters, and letting go of a request.

    SGLang's scheduler owns sequences and KV, so the stepping methods are not available here.
    """

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.device = torch.device("cuda")
        self.stats = EngineStats()
        self.bridge: SchedulerBridge | None = None

    def remove_sequence(self, seq_id: str) -> None:
        if self.bridge is not None:
            self.bridge.remove(seq_id)

    def _driven_by_sglang(self, *_: Any) -> Any:
        raise EngineError("the SGLang backend is stepped by SGLang's scheduler, not through the engine port")

    add_sequence = extend = rollback = forward = length = _driven_by_sglang


class SGLangModRuntime(ModRuntime):
    """A `ModRuntime` on an in-process SGLang scheduler (one GPU); see the module docstring."""

    def __init__(
        self,
        engine: SGLangEngineSettings,
        tokenizer: Any,
        *,
        model_name: str,
        settings: RuntimeSettings | None = None,
        traces: TraceStore | None = None,
        observers: Sequence[RuntimeObserver] = (),
        startup_timeout_s: float = 900.0,
    ) -> None:
        view = SGLangBackendView(_config_vocab_size(engine.model_path, tokenizer))
        runtime_settings = settings or RuntimeSettings(max_batch=4096)  # SGLang does the batching
        super().__init__(
            view,  # the port's stepping methods raise: SGLang's scheduler steps the requests
            tokenizer,
            model_name=model_name,
            settings=runtime_settings,
            traces=traces,
            observers=observers,
        )
        self.engine = engine
        self.view = view
        self.startup_timeout_s = startup_timeout_s
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._scheduler: Any = None

    # ----- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the engine thread and wait until SGLang is ready (model loaded, graphs captured)."""
        if active_bridge() is not None:
            raise SGLangStartError("an SGLang engine already runs in this process: stop it before starting another")
        super().start()
        if not self._ready.wait(self.startup_timeout_s):
            raise SGLangStartError(f"SGLang did not start within {self.startup_timeout_s:.0f} s")
        if self._startup_error is not None:
            raise SGLangStartError(f"SGLang could not start: {self._startup_error}") from self._startup_error

    def stop(self) -> None:
        self._stopped.set()
        if self._scheduler is not None:
            self._scheduler.gracefully_exit = True  # checked at the top of every loop iteration
        if self.view.bridge is not None:
            self.view.bridge.wake()
        super().stop()

    def submit(self, handle: RequestHandle) -> RequestHandle:
        super().submit(handle)
        if self.view.bridge is not None:
            self.view.bridge.wake()
        return handle

    # ----- engine thread -------------------------------------------------------------------------
    def _run(self) -> None:
        from quote_serving.engine.sglang.launcher import build_scheduler, shutdown_scheduler

        try:
            scheduler = build_scheduler(self.engine)
            bridge = self._bridge_for(scheduler)
            activate(bridge)
        except BaseException as exc:  # reported by start(); the thread ends
            logger.exception("SGLang engine for %s failed to start", self.engine.model_path)
            self._startup_error = exc
            self._stopped.set()  # a failed start is reported by start(), not treated as a dead loop
            self._ready.set()
            return
        self._scheduler = scheduler
        self._ready.set()
        try:
            if not self._stopped.is_set():
                scheduler.run_event_loop()
        except Exception:
            logger.exception("SGLang scheduler loop failed; failing %d live requests", len(self._live))
            self.fail_all("internal engine error; the request was not completed")
        finally:
            deactivate(bridge)
            shutdown_scheduler(scheduler)

    def _bridge_for(self, scheduler: Any, ops: SchedulerOps | None = None) -> SchedulerBridge:
        self.view.vocab_size = int(scheduler.model_config.vocab_size)
        bridge = SchedulerBridge(
            self,
            vocab_size=self.view.vocab_size,
            stats=self.view.stats,
            allow_trim=self.engine.inplace_trim,
            page_size=int(getattr(scheduler, "page_size", 1) or 1),
            ops=ops,
        )
        if self.mod_calls is not None:  # isolated mods: a step's calls go to their workers at once
            bridge.runner.submit = lambda tracked, event, then: self._submit(tracked.live, event, then)
            bridge.runner.wait_s = self.settings.mod_budget_ms / 1000 * 4 + 60  # the pool fails calls first
        self.view.bridge = bridge
        return bridge

    # ----- BridgeHost: what the hooks call back -------------------------------------------------
    def admit(self) -> list[Any]:
        """Admit every queued request (SGLang queues and batches them); Prefilled runs here."""
        admitted: list[Any] = []
        while (live := self.admit_next()) is not None:
            if not live.gen.finished:
                admitted.append(live)
        return admitted

    def cancelled(self) -> list[Any]:
        return [live for live in self.live_requests() if live.handle.cancelled and not live.gen.finished]

    def publish(self, live: Any, *, forwarded_ns: int, ended_ns: int) -> None:
        if not self._is_live(live):
            return  # already completed (e.g. cancelled, then finished by SGLang)
        self.record_step(live, forwarded_ns, ended_ns)
        if live.gen.finished:
            self.complete(live)
        else:
            live.handle.publish(self.snapshot(live))

    def fail(self, live: Any, message: str, kind: str) -> None:
        if self._is_live(live):
            super().fail(live, message, kind)

    def _is_live(self, live: Any) -> bool:
        return any(current is live for current in self.live_requests())


def _config_vocab_size(model_path: str, tokenizer: Any) -> int:
    """The logits width before SGLang is up: the checkpoint's `vocab_size`, else the tokenizer's."""
    config = Path(model_path) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        size = data.get("vocab_size") or data.get("text_config", {}).get("vocab_size")
        if size:
            return int(size)
    return len(tokenizer)
