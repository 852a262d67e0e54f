"""Out-of-process mods (`mod_isolation=process`): confined worker processes, per tenant.

The engine keeps each request's `Generation`; its mod invoker (`ModWorkerPool.invoker(tenant)`)
sends every event to one worker of the request's tenant and waits at most the per-call budget:

    Generation._call (any thread) ─► invoker ─► route: request → its worker (affinity)
        ─► worker.lock ─► frame (+ row in shared memory) ─► worker ─► answer ─► action (re-validated)

- Tenants: each has up to `workers_per_tenant` workers of its own; a worker never serves two
  tenants. A new request goes to its tenant's least-loaded worker (another is started while
  under the cap and a warm spare is ready); all of a request's calls go to that worker, where its
  per-request mod state lives. Calls of different workers run in parallel: the pool's `_lock`
  guards only bookkeeping and is never held during an exchange or a spawn.
- Spare: one clean worker (no bundle loaded) is started ahead of need in the background and
  handed to the next tenant (or one-shot loader) that needs a process, then replaced.
- Failures: a call that misses its budget kills its worker (`timeout`); a worker that exits, is
  killed or breaks the protocol is dropped (`died`, `protocol`). The failing call's request fails
  naming its mod; the worker's other requests fail at their next call, naming theirs.
- CPU: a monitor thread and every call sample workers' CPU (`mod_cpu`): a worker that burns CPU
  while no call is in flight is killed (`idle_cpu`); one nearing its RLIMIT_CPU gets no new
  requests and is retired once its requests are done (`recycled`), instead of being killed by
  the kernel mid-call. Every drop is counted (`restarts`, `on_restart` → Prometheus).
- Bundles are loaded for their metadata (name, max_backtrack) in a one-shot worker, so no mod's
  module code ever runs in the engine process or beside another tenant's bundles.
"""

from __future__ import annotations

import collections
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quote_mod_sdk import actions as act
from quote_mod_sdk import events as ev
from quote_mod_sdk.conversation import _ACTIVE, _SCHEMAS
from quote_mod_sdk.errors import ModFailedError, SerializationError
from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import bundle_digest, validate_bundle
from quote_serving.runtime.mod_answers import event_header, row_bytes, row_length
from quote_serving.runtime.mod_calls import CallQueue, Ticket, chained, settled, wait_for
from quote_serving.runtime.mod_process import SpawnSpec, WorkerDied, WorkerProcess
from quote_serving.runtime.mod_slots import DEFAULT_CAPACITY

__all__ = ["RESTART_REASONS", "ModWorkerPool", "RemoteMod", "WorkerDied"]

logger = logging.getLogger(__name__)

RESTART_REASONS = ("timeout", "died", "idle_cpu", "recycled", "protocol")
_LOST_KEPT = 4096  # requests remembered as failed by their worker's end, until their Finished


def _refuse(*_: Any) -> Any:
    raise RuntimeError("an isolated mod runs only in its worker process")


class RemoteMod(Mod):
    """A mod that lives in a worker: its metadata here, its code there."""

    def __init__(self, name: str, max_backtrack: int | None, description: str, bundle: dict[str, Any]) -> None:
        super().__init__(_refuse, name=name, max_backtrack=max_backtrack, description=description)
        self.bundle = bundle
        self.digest = bundle_digest(bundle)


class _Worker:
    """A tenant's worker process and the pool's bookkeeping about it (guarded by the pool lock)."""

    def __init__(self, proc: WorkerProcess, key: str, on_fail: Callable[[_Worker, str, str], None]) -> None:
        self.proc = proc
        self.key = key
        self.queue = CallQueue(proc, lambda reason, why: on_fail(self, reason, why))
        self.loaded = self.queue.loaded  # bundle digest → mod name
        self.requests: set[str] = set()  # live requests bound here (affinity)
        self.introduced: set[str] = set()  # requests whose conversation the worker has
        self.retiring = False  # near its CPU limit: no new requests
        self.gone: str | None = None  # why it was dropped, for its requests' errors

    def names(self) -> str:
        return ", ".join(sorted(repr(n) for n in set(self.loaded.values()))) or "none loaded"


class ModWorkerPool:
    """Per-tenant mod workers; `invoker(tenant)` is a thread-safe `ModInvoker` for `Generation`."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        budget_ms: float,
        memory_mb: int = 2048,
        cpu_s: int = 3600,
        start_timeout_s: float = 60.0,
        load_timeout_s: float = 30.0,
        workers_per_tenant: int = 2,
        recycle_cpu_s: float | None = None,
        idle_cpu_s: float = 0.5,
        monitor_interval_s: float = 0.5,
        row_capacity: int = DEFAULT_CAPACITY,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.budget_s = budget_ms / 1000
        self.load_timeout_s = load_timeout_s
        self.workers_per_tenant = max(1, workers_per_tenant)
        self.recycle_cpu_s = recycle_cpu_s if recycle_cpu_s is not None else 0.9 * cpu_s
        self.on_restart = on_restart  # called with a reason of RESTART_REASONS (e.g. a Prometheus counter)
        self._tmp = tempfile.TemporaryDirectory(prefix="quote-mod-workers-")
        self.home = self._tmp.name
        tokenizer_dir: str | None = None
        if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
            tokenizer_dir = os.path.join(self.home, "tokenizer")
            tokenizer.save_pretrained(tokenizer_dir)
        self.spec = SpawnSpec(self.home, tokenizer_dir, memory_mb, cpu_s, start_timeout_s, row_capacity, idle_cpu_s)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # workers started, spare ready, workers dropped
        self._groups: dict[str, list[_Worker]] = {}
        self._starting: collections.Counter[str] = collections.Counter()
        self._affinity: dict[tuple[str, str], _Worker] = {}
        self._lost: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()
        self._spare: WorkerProcess | None = None
        self._births: set[WorkerProcess] = set()  # spawned, not ready yet
        self._refilling = False
        self._spare_claimed = False  # a caller waits for the spare being started
        self._closed = threading.Event()
        self.restarts: collections.Counter[str] = collections.Counter()
        self.layers: dict[str, str] = {}
        self._monitor = threading.Thread(
            target=self._watch, args=(monitor_interval_s,), name="quote-mod-monitor", daemon=True
        )
        self._monitor.start()

    @property
    def respawns(self) -> int:
        """Workers dropped (and so replaced on demand), for every reason."""
        return sum(self.restarts.values())

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> dict[str, str]:
        """Start the first worker now (fails fast on a broken host), keep it as the warm spare,
        and log its confinement layers."""
        proc = self._spawn()
        self.layers = proc.layers
        with self._lock:
            self._spare, stale = proc, self._spare
        if stale is not None:
            stale.kill()
        for layer, state in proc.layers.items():
            (logger.info if state == "applied" else logger.warning)("mod workers: %s %s", layer, state)
        return proc.layers

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            procs = [w.proc for group in self._groups.values() for w in group] + list(self._births)
            if self._spare is not None:
                procs.append(self._spare)
            self._groups, self._affinity, self._spare = {}, {}, None
            self._changed.notify_all()
        for proc in procs:
            proc.kill()
        self._tmp.cleanup()

    def wait_for_spare(self, timeout_s: float) -> bool:
        """Block until a warm spare is ready (tests, warm-up); True if one is."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._refill_locked()
            while self._spare is None and not self._closed.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    break
            return self._spare is not None

    # ----- processes: the spare, fresh ones, dropped ones ----------------------------------------
    def _fresh_process(self) -> WorkerProcess:
        """A clean process: the spare if one is ready, or the one starting if nobody else waits
        for it (a new spare is then started); otherwise a spawn of its own, in parallel."""
        deadline = time.monotonic() + self.spec.start_timeout_s
        with self._lock:
            if self._spare is None and self._refilling and not self._spare_claimed:
                self._spare_claimed = True
                try:
                    while self._spare is None and self._refilling and not self._closed.is_set():
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._changed.wait(left):
                            break
                finally:
                    self._spare_claimed = False
            proc, self._spare = self._spare, None
            self._refill_locked()
        if proc is not None and proc.alive():
            return proc
        if proc is not None:
            proc.kill()
        return self._spawn()

    def _spawn(self) -> WorkerProcess:
        """A new worker, ready; one still starting when the pool closes is killed by `close`."""
        proc = WorkerProcess(self.spec)
        with self._lock:
            if self._closed.is_set():
                proc.kill()
                raise WorkerDied("the mod worker pool is closed")
            self._births.add(proc)
        try:
            return proc.wait_ready()
        finally:
            with self._lock:
                self._births.discard(proc)

    def _refill_locked(self) -> None:
        if self._spare is None and not self._refilling and not self._closed.is_set():
            self._refilling = True
            threading.Thread(target=self._refill, name="quote-mod-spare", daemon=True).start()

    def _refill(self) -> None:
        proc: WorkerProcess | None = None
        try:
            proc = self._spawn()
        except Exception:
            if not self._closed.is_set():
                logger.warning("mod workers: the spare worker could not start", exc_info=True)
        with self._lock:
            self._refilling = False
            if proc is not None and not self._closed.is_set() and self._spare is None:
                self._spare, proc = proc, None
            self._changed.notify_all()
        if proc is not None:
            proc.kill()

    def _drop(self, worker: _Worker, reason: str, why: str) -> None:
        """End a worker: its requests fail at their next call with `why`; counted as `reason`."""
        with self._lock:
            if worker.gone is not None:
                return
            worker.gone = why
            group = self._groups.get(worker.key, [])
            if worker in group:
                group.remove(worker)
            for rid in worker.requests:
                self._affinity.pop((worker.key, rid), None)
                self._lost[(worker.key, rid)] = why
            while len(self._lost) > _LOST_KEPT:
                self._lost.popitem(last=False)
            worker.requests.clear()
            self._changed.notify_all()
        worker.proc.kill()
        worker.queue.fail_all(why, reason == "timeout", self.budget_s)
        with self._lock:
            self.restarts[reason] += 1
        logger.warning(
            "mod worker %d of tenant %r (mods %s) dropped: %s", worker.proc.pid, worker.key, worker.names(), why
        )
        if self.on_restart is not None:
            try:
                self.on_restart(reason)
            except Exception:  # metrics never fail a request
                logger.exception("on_restart failed")

    # ----- routing: request → worker -------------------------------------------------------------
    def _route(self, key: str, rid: str, mod: RemoteMod, finished: bool) -> _Worker | None:
        """The request's worker; None for a Finished nobody needs to hear (its worker is gone)."""
        with self._lock:
            worker = self._affinity.get((key, rid))
            if worker is not None:
                return worker
            lost = self._lost.pop((key, rid), None) if finished else self._lost.get((key, rid))
            if finished:
                return None
            if lost is not None:
                raise ModFailedError(f"mod {mod.name!r} failed: {lost}", mod=mod.name, kind="exception")
        return self._assign(key, rid)

    def _assign(self, key: str, rid: str) -> _Worker:
        """Bind a new request to the tenant's least-loaded worker, or to a new one under the cap."""
        deadline = time.monotonic() + self.spec.start_timeout_s
        with self._lock:
            group = [w for w in self._groups.get(key, []) if not w.retiring]
        for worker in group:  # one near its CPU limit takes no new request (it retires)
            self._retire_if_spent(worker, worker.proc.cpu())
        with self._lock:
            while True:
                if self._closed.is_set():
                    raise WorkerDied("the mod worker pool is closed")
                usable = [w for w in self._groups.get(key, []) if not w.retiring]
                best = min(usable, key=lambda w: len(w.requests), default=None)
                room = len(usable) + self._starting[key] < self.workers_per_tenant
                grow = room and (best is None or (bool(best.requests) and self._spare is not None))
                if best is not None and not grow:
                    return self._bind(key, rid, best)
                if grow:
                    self._starting[key] += 1
                    break
                left = deadline - time.monotonic()  # none usable yet; another call is starting one
                if left <= 0 or not self._changed.wait(left):
                    raise TimeoutError("no mod worker became ready in time")
        try:
            proc = self._fresh_process()
        finally:
            with self._lock:
                self._starting[key] -= 1
                self._changed.notify_all()
        with self._lock:
            worker = _Worker(proc, key, self._queue_failed)
            if not self._closed.is_set():
                self._groups.setdefault(key, []).append(worker)
                return self._bind(key, rid, worker)
        proc.kill()
        raise WorkerDied("the mod worker pool is closed")

    def _bind(self, key: str, rid: str, worker: _Worker) -> _Worker:
        worker.requests.add(rid)
        self._affinity[(key, rid)] = worker
        return worker

    def _release(self, worker: _Worker, rid: str) -> None:
        """The request finished: unbind it; a retiring worker left without requests ends."""
        with self._lock:
            if self._affinity.get((worker.key, rid)) is worker:
                del self._affinity[(worker.key, rid)]
            worker.requests.discard(rid)
            worker.introduced.discard(rid)
            self._lost.pop((worker.key, rid), None)
            done = worker.retiring and not worker.requests and worker.gone is None
        if done:
            self._drop(worker, "recycled", "its worker was recycled")

    # ----- loading ---------------------------------------------------------------------------
    def load(self, bundle: Mapping[str, Any]) -> RemoteMod:
        """A bundle's `RemoteMod`: loaded once in a one-shot worker for its name and max_backtrack."""
        spec = validate_bundle(bundle)
        proc: WorkerProcess | None = None
        try:
            proc = self._fresh_process()
            header, _ = proc.exchange(
                {"op": "load", "digest": bundle_digest(spec), "bundle": spec},
                b"",
                time.monotonic() + self.load_timeout_s,
            )
        except TimeoutError:
            raise SerializationError(f"loading mod {spec['name']!r} took over {self.load_timeout_s:.0f} s") from None
        except (WorkerDied, OSError) as exc:
            raise SerializationError(f"loading mod {spec['name']!r} failed: {exc}") from None
        finally:
            if proc is not None:
                proc.kill()
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
            return self.call(key, mod, event)

        return invoke

    def call(self, key: str, mod: Mod, event: ev.ModEvent) -> act.Action:
        """One mod call on the request's worker, answered before it returns; safe from any thread.
        A Finished is sent and not waited for: nobody uses its answer."""
        ticket = self.submit(key, mod, event)
        if isinstance(event, ev.Finished):
            return act.NOOP
        # Other threads may wait on this worker too (the SGLang step's threads): look every 2 ms.
        wait_for([ticket], self.budget_s + self.load_timeout_s + 1.0, poll_s=0.002)  # the queue enforces budgets
        if not ticket.done:  # only if the queue could not (a worker that never sent its ready frame)
            raise ModFailedError(f"mod {mod.name!r} did not answer", mod=mod.name, kind="timeout")
        return ticket.result()

    def submit(
        self,
        key: str,
        mod: Mod,
        event: ev.ModEvent,
        *,
        conversation: tuple[Any, Any] | None = None,
        then: Sequence[ev.ModEvent] = (),
    ) -> Ticket:
        """`mod_calls.ModCalls.submit`: one call to the request's worker, not waited for
        (`mod_calls.wait_for` waits). Without `conversation`, the calling context's (as
        `Generation` sets it) goes with the request's first call."""
        if not isinstance(mod, RemoteMod):
            return settled(mod.name, ModFailedError(f"mod {mod.name!r} was not loaded for isolation", mod=mod.name))
        finished = isinstance(event, ev.Finished)
        try:
            worker = self._route(key, event.request_id, mod, finished)
        except ModFailedError as exc:
            return settled(mod.name, exc)
        except (WorkerDied, TimeoutError, OSError) as exc:
            return settled(mod.name, ModFailedError(f"mod {mod.name!r}: no worker could start ({exc})", mod=mod.name))
        if worker is None:
            return settled(mod.name, act.NOOP)
        try:
            with worker.queue.lock:
                return self._send(worker, mod, event, conversation, then, finished)
        finally:
            if finished:
                self._release(worker, event.request_id)

    def _send(
        self,
        worker: _Worker,
        mod: RemoteMod,
        event: ev.ModEvent,
        conversation: tuple[Any, Any] | None,
        then: Sequence[ev.ModEvent],
        finished: bool,
    ) -> Ticket:
        queue = worker.queue
        if worker.gone is not None:  # dropped since it was routed
            return settled(mod.name, ModFailedError(f"mod {mod.name!r} failed: {worker.gone}", mod=mod.name))
        if mod.digest not in queue.loaded:
            queue.loaded[mod.digest] = mod.name
            queue.load_errors.pop(mod.digest, None)
            load = Ticket(mod.name, None, self.load_timeout_s, digest=mod.digest, discard=True)
            queue.send(load, {"op": "load", "digest": mod.digest, "bundle": mod.bundle})
        ticket = Ticket(mod.name, event, self.budget_s, digest=mod.digest, discard=finished)
        call: dict[str, Any] = {"op": "call", "digest": mod.digest, "event": event_header(event)}
        blob = b""
        if isinstance(event, ev.ForwardPass):
            ticket.expected = row_length(event.logits)
            ticket.pair = queue.take_pair() if worker.proc.slots.fits(ticket.expected) else None
            if ticket.pair is not None:  # only the length and the pair are framed
                call["event"]["row"] = worker.proc.slots.put_input(event.logits, ticket.pair)
                call["event"]["slot"] = ticket.pair
            else:
                blob = row_bytes(event.logits)
        if then and not finished:
            call["then"] = [event_header(each) for each in then]
            ticket.paired = chained(mod.name, then, self.budget_s, mod.digest)
        if event.request_id not in worker.introduced:
            if conversation is None:
                active = _ACTIVE.get()
                messages = list(active[1]) if active and active[0] == event.request_id else []
                conversation = (messages, list(_SCHEMAS.get()))
            call["messages"], call["tools"] = list(conversation[0] or []), list(conversation[1] or [])
            worker.introduced.add(event.request_id)
        queue.send(ticket, call, blob, plain="messages" not in call)  # events only: no client JSON
        return ticket

    def _queue_failed(self, worker: _Worker, reason: str, why: str) -> None:
        """A worker's queue found it stuck (its head call over budget), dead, or lying."""
        if reason == "timeout":
            head = worker.queue.fifo[0].name if worker.queue.fifo else "?"
            why = f"its worker was killed when a call to mod {head!r} exceeded its budget"
        self._drop(worker, reason, why)

    # ----- CPU hygiene -----------------------------------------------------------------------
    def _charge_idle(self, worker: _Worker) -> bool:
        """Did the worker burn CPU while no call was in flight? (CPU-s beyond its busy wall time)"""
        cpu = worker.proc.cpu()
        if cpu is None:
            return False
        self._retire_if_spent(worker, cpu)
        return worker.proc.idle.charge(cpu - worker.queue.busy(time.monotonic()))

    def _retire_if_spent(self, worker: _Worker, cpu: float | None) -> None:
        """A worker near its RLIMIT_CPU takes no new requests and ends once its requests are done."""
        if cpu is not None and cpu >= self.recycle_cpu_s and not worker.retiring:
            logger.info("mod worker %d of tenant %r used %.0f CPU-s: retiring it", worker.proc.pid, worker.key, cpu)
            with self._lock:
                worker.retiring = True

    def _watch(self, interval_s: float) -> None:
        """The monitor thread: stuck calls, dead workers, idle CPU burn, retired workers."""
        while not self._closed.wait(interval_s):
            with self._lock:
                workers = [w for group in self._groups.values() for w in group]
            for worker in workers:
                try:
                    self._inspect(worker)
                except Exception:
                    logger.exception("mod worker monitor failed on worker %d", worker.proc.pid)

    def _inspect(self, worker: _Worker) -> None:
        if not worker.queue.readers:  # nobody is waiting on it: find a head call past its budget
            worker.queue.pump()  # (a Finished nobody waits for, too); a waiting thread does it itself
        if worker.gone is not None:
            return
        if not worker.proc.alive():
            self._drop(worker, "died", worker.proc.death())
        elif self._charge_idle(worker):
            self._drop(worker, "idle_cpu", _idle_why(worker))
        elif worker.retiring and not worker.requests:
            self._drop(worker, "recycled", "its worker was recycled")


def _idle_why(worker: _Worker) -> str:
    return (
        f"its worker (mods {worker.names()}) was killed for using CPU while no call was in flight"
        " (a background thread?)"
    )
