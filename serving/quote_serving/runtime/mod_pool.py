"""Out-of-process mods (`mod_isolation=process`): one confined worker process per tenant.

The engine keeps each request's `Generation`; its mod invoker (`ModWorkerPool.invoker(tenant)`)
sends every event to the tenant's worker (`runtime/mod_worker.py`) and waits at most the per-call
budget for the action:

    Generation._call ─► invoker ─frame─► worker stdin │ mod(event) │ worker stdout ─frame─► action
                                                                       (re-validated here)

- Workers start from a clean interpreter (`python -I`, never fork) with a scrubbed environment (no
  QUOTE_* secrets), confine themselves before loading any mod, and load bundles from source.
- A call that misses its budget: the worker is SIGKILLed and the request fails naming the mod
  (`timeout`); a worker that exits, is killed or runs out of memory fails the request whose call
  it was serving; the next call starts a fresh worker (`respawns` counts them).
- Answers are untrusted: JSON + raw float32 bytes, sizes capped, every action rebuilt through the
  SDK's `ActionBuilder` and `validate_action` (the validity table), rows checked later by
  `checked_row` like any other.
- Bundles are loaded for their metadata (name, max_backtrack) in a one-shot worker, so no mod's
  module code ever runs in the engine process or beside another tenant's bundles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from quote_mod_sdk import actions as act
from quote_mod_sdk import events as ev
from quote_mod_sdk.conversation import _ACTIVE, _SCHEMAS
from quote_mod_sdk.errors import InvalidActionError, ModFailedError, SerializationError
from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import bundle_digest, validate_bundle
from quote_serving.runtime.mod_protocol import ProtocolError, decode_header, encode_frame, split_prefix

__all__ = ["ModWorkerPool", "RemoteMod", "WorkerDied"]

logger = logging.getLogger(__name__)

_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class WorkerDied(RuntimeError):
    """The worker exited, was killed, or broke the protocol."""


def _refuse(*_: Any) -> Any:
    raise RuntimeError("an isolated mod runs only in its worker process")


class RemoteMod(Mod):
    """A mod that lives in a worker: its metadata here, its code there."""

    def __init__(self, name: str, max_backtrack: int | None, description: str, bundle: dict[str, Any]) -> None:
        super().__init__(_refuse, name=name, max_backtrack=max_backtrack, description=description)
        self.bundle = bundle
        self.digest = bundle_digest(bundle)


class _Worker:
    """One worker process and its pipes; calls are serialised by `lock`."""

    def __init__(self, pool: ModWorkerPool, key: str) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.loaded: set[str] = set()
        self.requests: set[str] = set()
        config = {"tokenizer_dir": pool.tokenizer_dir, "memory_mb": pool.memory_mb, "cpu_s": pool.cpu_s}
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": pool.home})
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "quote_serving.runtime.mod_worker", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=pool.home,
            close_fds=True,
            start_new_session=True,  # a signal to the engine's group never reaches it, nor its to ours
        )
        self.out_fd = self.proc.stdout.fileno()  # type: ignore[union-attr]  # pipes: Popen opened with PIPE
        try:
            ready, _ = self.receive(time.monotonic() + pool.start_timeout_s)
        except BaseException:  # a worker that cannot start is never left behind
            self.kill()
            raise
        self.layers: dict[str, str] = dict(ready.get("layers") or {})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def exchange(self, header: dict[str, Any], blob: bytes, deadline: float) -> tuple[dict[str, Any], bytes]:
        try:
            # (type: ignore below: pipes: Popen opened with PIPE)
            self.proc.stdin.write(encode_frame(header, blob))  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]  # pipes: Popen opened with PIPE
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WorkerDied(self.death()) from exc
        return self.receive(deadline)

    def receive(self, deadline: float) -> tuple[dict[str, Any], bytes]:
        try:
            header_len, blob_len = split_prefix(self._read(8, deadline))
            header = decode_header(self._read(header_len, deadline))
            blob = self._read(blob_len, deadline) if blob_len else b""
        except ProtocolError as exc:
            self.kill()
            raise WorkerDied(f"its worker broke the protocol ({exc})") from None
        return header, blob

    def _read(self, n: int, deadline: float) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            left = deadline - time.monotonic()
            ready = select.select([self.out_fd], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                raise TimeoutError
            chunk = os.read(self.out_fd, min(n, 1 << 20))
            if not chunk:
                raise WorkerDied(self.death())
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def death(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"its worker was killed by {name}"
        return f"its worker exited with status {code}"


class ModWorkerPool:
    """Per-tenant mod workers; `invoker(tenant)` is a `ModInvoker` for `Generation`."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        budget_ms: float,
        memory_mb: int = 2048,
        cpu_s: int = 3600,
        start_timeout_s: float = 60.0,
        load_timeout_s: float = 30.0,
    ) -> None:
        self.budget_s = budget_ms / 1000
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.start_timeout_s = start_timeout_s
        self.load_timeout_s = load_timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="quote-mod-workers-")
        self.home = self._tmp.name
        self.tokenizer_dir: str | None = None
        if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
            self.tokenizer_dir = os.path.join(self.home, "tokenizer")
            tokenizer.save_pretrained(self.tokenizer_dir)
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self.respawns = 0
        self.layers: dict[str, str] = {}

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Start one worker now (fails fast on a broken host) and log its confinement layers."""
        worker = self._worker("")
        self.layers = worker.layers
        for layer, state in worker.layers.items():
            (logger.info if state == "applied" else logger.warning)("mod workers: %s %s", layer, state)
        return worker.layers

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.kill()
        self._tmp.cleanup()

    def _worker(self, key: str) -> _Worker:
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and worker.alive():
                return worker
            if worker is not None:
                self.respawns += 1
            worker = _Worker(self, key)
            self._workers[key] = worker
            return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if self._workers.get(worker.key) is worker:
                del self._workers[worker.key]
                self.respawns += 1

    # ----- loading ---------------------------------------------------------------------------
    def load(self, bundle: Mapping[str, Any]) -> RemoteMod:
        """A bundle's `RemoteMod`: loaded once in a one-shot worker for its name and max_backtrack."""
        spec = validate_bundle(bundle)
        worker: _Worker | None = None
        try:
            worker = _Worker(self, "<loader>")
            header, _ = worker.exchange(
                {"op": "load", "digest": bundle_digest(spec), "bundle": spec},
                b"",
                time.monotonic() + self.load_timeout_s,
            )
        except TimeoutError:
            raise SerializationError(f"loading mod {spec['name']!r} took over {self.load_timeout_s:.0f} s") from None
        except WorkerDied as exc:
            raise SerializationError(f"loading mod {spec['name']!r} failed: {exc}") from None
        finally:
            if worker is not None:
                worker.kill()
        if not header.get("ok"):
            raise SerializationError(f"mod {spec['name']!r} could not be loaded: {header.get('error')}")
        backtrack = header.get("max_backtrack")
        if backtrack is not None and (not isinstance(backtrack, int) or isinstance(backtrack, bool) or backtrack < 0):
            raise SerializationError(f"mod {spec['name']!r} declared an unusable max_backtrack")
        return RemoteMod(str(spec["name"]), backtrack, str(header.get("description") or "")[:4000], spec)

    # ----- calls -----------------------------------------------------------------------------
    def invoker(self, tenant: str | None) -> Any:
        key = tenant or ""

        def invoke(mod: Mod, event: ev.ModEvent, actions: Any, tokenizer: Any) -> act.Action:
            if not isinstance(mod, RemoteMod):
                raise ModFailedError(f"mod {mod.name!r} was not loaded for isolation", mod=mod.name, kind="exception")
            return self.call(key, mod, event)

        return invoke

    def call(self, key: str, mod: RemoteMod, event: ev.ModEvent) -> act.Action:
        header, blob = _event_frame(event)
        try:
            worker = self._worker(key)
        except (WorkerDied, TimeoutError, OSError) as exc:
            raise ModFailedError(
                f"mod {mod.name!r}: no worker could start ({exc})", mod=mod.name, kind="exception"
            ) from None
        deadline = time.monotonic() + self.budget_s  # a worker's own start is not the mod's time
        with worker.lock:
            try:
                if mod.digest not in worker.loaded:
                    load = {"op": "load", "digest": mod.digest, "bundle": mod.bundle}
                    answer, _ = worker.exchange(load, b"", time.monotonic() + self.load_timeout_s)
                    if not answer.get("ok"):
                        raise ModFailedError(
                            f"mod {mod.name!r} could not be loaded: {answer.get('error')}",
                            mod=mod.name,
                            kind="exception",
                        )
                    worker.loaded.add(mod.digest)
                    deadline = time.monotonic() + self.budget_s
                call: dict[str, Any] = {"op": "call", "digest": mod.digest, "event": header}
                if event.request_id not in worker.requests:
                    active, schemas = _ACTIVE.get(), _SCHEMAS.get()
                    messages: list[Any] = list(active[1]) if active and active[0] == event.request_id else []
                    call["messages"], call["tools"] = messages, list(schemas)
                    worker.requests.add(event.request_id)
                if isinstance(event, ev.Finished):
                    worker.requests.discard(event.request_id)
                answer, data = worker.exchange(call, blob, deadline)
            except TimeoutError:
                self._drop(worker)
                raise ModFailedError(
                    f"mod {mod.name!r} exceeded its {self.budget_s * 1000:.0f} ms budget on {type(event).__name__}"
                    " (its worker was killed)",
                    mod=mod.name,
                    kind="timeout",
                ) from None
            except WorkerDied as exc:
                self._drop(worker)
                raise ModFailedError(f"mod {mod.name!r} failed: {exc}", mod=mod.name, kind="exception") from None
        if not answer.get("ok"):
            message = str(answer.get("error"))[:2000]
            if answer.get("kind") == "invalid_action":
                raise InvalidActionError(message)
            raise ModFailedError(f"mod {mod.name!r} raised {message}", mod=mod.name, kind="exception")
        return _action(event, answer, data)


def _event_frame(event: ev.ModEvent) -> tuple[dict[str, Any], bytes]:
    base: dict[str, Any] = {"kind": type(event).__name__, "request_id": event.request_id, "step": event.step}
    if isinstance(event, ev.Prefilled):
        info = event.context_info
        base.update(
            max_steps=event.max_steps,
            prefilled_text=event.prefilled_text,
            tokens=list(info.tokens) if info is not None else [],
            prompt_len=info.prompt_len if info is not None else 0,
            tokens_so_far_len=event.tokens_so_far_len,
        )
    elif isinstance(event, ev.ForwardPass):
        row = event.logits
        if hasattr(row, "detach"):
            import torch

            with torch._C.DisableTorchFunctionSubclass():
                array = row.detach().float().cpu().reshape(-1).numpy()
        else:
            array = np.asarray(row, dtype=np.float32).reshape(-1)
        return base, np.ascontiguousarray(array, dtype=np.float32).tobytes()
    elif isinstance(event, ev.Sampled):
        base["sampled_token"] = event.sampled_token
    elif isinstance(event, ev.Added):
        base.update(
            added_tokens=list(event.added_tokens), forced=event.forced, tokens_so_far_len=event.tokens_so_far_len
        )
    elif isinstance(event, ev.Finished):
        base.update(reason=event.reason, output=list(event.output_tokens))
    return base, b""


def _action(event: ev.ModEvent, answer: dict[str, Any], blob: bytes) -> act.Action:
    """The worker's answer as an action, rebuilt and re-validated as if the mod were untrusted."""
    builder = act.ActionBuilder(event)
    name = answer.get("action")
    try:
        if name == "noop":
            action: act.Action = act.NOOP
        elif name == "adjust_prefill":
            action = builder.adjust_prefill(answer["tokens"], answer.get("max_steps"))
        elif name == "adjust_logits":
            logits = None
            if answer.get("logits"):
                if len(blob) % 4:
                    raise InvalidActionError("adjust_logits returned a row that is not float32")
                logits = np.frombuffer(blob, dtype=np.float32).copy()
            temp = answer.get("token_temp")
            if logits is None and temp is None:
                raise InvalidActionError("adjust_logits needs logits, token_temp, or both")
            action = act.AdjustLogits(logits, None) if temp is None else builder.adjust_logits(logits, temp)
        elif name == "force_tokens":
            action = builder.force_tokens(answer["tokens"])
        elif name == "backtrack":
            action = builder.backtrack(answer["n"], answer.get("reinject"))
        elif name == "force_output":
            action = builder.force_output(answer["tokens"])
        elif name == "tool_calls":
            action = builder.tool_calls(answer["calls"])
        elif name == "emit_error":
            action = builder.emit_error(str(answer["message"])[:2000])
        else:
            raise InvalidActionError(f"the worker answered an unknown action {name!r:.40}")
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidActionError(
            f"the worker answered a malformed {name!r:.40} action ({type(exc).__name__})"
        ) from None
    return act.validate_action(event, action)
