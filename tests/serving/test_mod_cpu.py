"""Issue 13: CPU hygiene of mod workers. They run at a lower priority; a mod whose background thread
spins between calls has its worker killed and its requests failed naming it; a worker nearing
its CPU-seconds limit is retired once its requests are done instead of being killed mid-call; and
every drop is counted in `quote_mod_worker_restarts_total{reason}`."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from quote_mod_sdk import events as ev
from quote_mod_sdk.errors import ModFailedError
from quote_serving.observability.metrics import QuoteMetrics
from quote_serving.runtime import mod_process
from quote_serving.runtime.mod_pool import ModWorkerPool, RemoteMod

SPINNER = """
import threading
from quote_mod_sdk import mod, ForwardPass

def spin():
    while True:
        pass

@mod
def spinner(event, actions):
    if isinstance(event, ForwardPass) and event.request_id.startswith("spin"):
        threading.Thread(target=spin, daemon=True).start()  # runs on after the call returns
"""

BURNER = """
import os, time
from quote_mod_sdk import mod, ForwardPass

@mod
def burner(event, actions):
    if isinstance(event, ForwardPass):
        if event.request_id.startswith("burn") and event.step == 1:
            until = time.process_time() + 2.5
            while time.process_time() < until:
                pass
        if event.request_id.startswith("sleep"):
            time.sleep(60)
        if event.request_id.startswith("regroup"):  # its session's scheduling group back to the engine's weight
            try:
                with open("/proc/self/autogroup", "w") as group:
                    group.write("-5")
                return actions.force_tokens([os.getpid(), 1])
            except OSError:
                return actions.force_tokens([os.getpid(), 0])
        return actions.force_tokens([os.getpid()])
"""


def _bundle(name: str, source: str) -> dict[str, str]:
    return {"language": "python", "module": name, "entrypoint": name, "source": textwrap.dedent(source), "name": name}


@pytest.fixture(scope="module")
def metrics() -> QuoteMetrics:
    return QuoteMetrics()


@pytest.fixture(scope="module")
def pool(metrics: QuoteMetrics) -> Iterator[ModWorkerPool]:
    counter = metrics.mod_worker_restarts
    workers = ModWorkerPool(
        None,
        budget_ms=12000,
        recycle_cpu_s=1e9,  # set by the recycling test
        on_restart=lambda reason: counter.labels(reason).inc(),
    )
    workers.start()
    yield workers
    workers.close()


def _call(pool: ModWorkerPool, tenant: str, mod: RemoteMod, rid: str, step: int = 1) -> object:
    return pool.invoker(tenant)(mod, ev.ForwardPass(rid, step, np.zeros(8, dtype=np.float32)), None, None)


def _finish(pool: ModWorkerPool, tenant: str, mod: RemoteMod, rid: str) -> None:
    pool.invoker(tenant)(mod, ev.Finished(rid, 2, "stop", []), None, None)


def _restarts(metrics: QuoteMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("quote_mod_worker_restarts_total", {"reason": reason}) or 0.0


def test_workers_run_at_a_lower_priority(pool: ModWorkerPool) -> None:
    burner = pool.load(_bundle("burner", BURNER))
    pid = int(_call(pool, "nice", burner, "n-1").tokens[0])  # type: ignore[attr-defined]
    assert os.getpriority(os.PRIO_PROCESS, pid) >= 10 > os.getpriority(os.PRIO_PROCESS, 0)
    assert os.sched_getscheduler(pid) == os.SCHED_BATCH  # a call never preempts the engine that sends it
    assert pool.layers["priority"] == "applied"
    _finish(pool, "nice", burner, "n-1")


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="this kernel has no autogroup")
def test_a_workers_session_group_weighs_less_than_the_engine_and_the_mod_cannot_raise_it(pool: ModWorkerPool) -> None:
    """A worker leads its own session; where the kernel schedules sessions as groups, the group's
    weight, not the worker's nice, is what competes with the engine's."""
    burner = pool.load(_bundle("burner", BURNER))
    pid, raised = (int(t) for t in _call(pool, "grouped", burner, "regroup-1").tokens)  # type: ignore[attr-defined]
    assert raised == 0  # Landlock keeps /proc read-only to the mod
    assert Path(f"/proc/{pid}/autogroup").read_text().split()[-1] == "10"
    _finish(pool, "grouped", burner, "regroup-1")


def test_a_thread_spinning_between_calls_gets_its_worker_killed(pool: ModWorkerPool, metrics: QuoteMetrics) -> None:
    spinner = pool.load(_bundle("spinner", SPINNER))
    pool.workers_per_tenant = 1  # both requests on one worker
    try:
        _call(pool, "spin", spinner, "quiet-1")
        _call(pool, "spin", spinner, "spin-1")  # the thread starts; the call itself returns at once
    finally:
        pool.workers_per_tenant = 2
    deadline = time.monotonic() + 30
    while pool.restarts["idle_cpu"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pool.restarts["idle_cpu"] == 1 and _restarts(metrics, "idle_cpu") == 1
    for rid in ("spin-1", "quiet-1"):  # both of the worker's requests fail, naming the mod
        with pytest.raises(ModFailedError, match=r"spinner.*CPU while no call was in flight"):
            _call(pool, "spin", spinner, rid)
        _finish(pool, "spin", spinner, rid)
    _call(pool, "spin", spinner, "quiet-2")  # a new request gets a fresh worker


def test_a_worker_near_its_cpu_limit_is_recycled_between_requests(pool: ModWorkerPool, metrics: QuoteMetrics) -> None:
    burner = pool.load(_bundle("burner", BURNER))
    assert pool.wait_for_spare(120) and pool._spare is not None
    started = pool._spare.cpu()  # importing torch costs CPU-s too: the limit counts them
    assert started is not None
    pool.recycle_cpu_s = started + 1.2  # the burner's 2.5 CPU-s call takes its worker past this
    old = int(_call(pool, "hot", burner, "burn-1").tokens[0])  # type: ignore[attr-defined]
    new = int(_call(pool, "hot", burner, "fresh-1").tokens[0])  # type: ignore[attr-defined]
    assert new != old  # no new request goes to a retiring worker
    assert pool.restarts["recycled"] == 0  # its request is live: the worker serves it on
    assert int(_call(pool, "hot", burner, "burn-1", step=2).tokens[0]) == old  # type: ignore[attr-defined]
    _finish(pool, "hot", burner, "burn-1")
    assert pool.restarts["recycled"] == 1 and _restarts(metrics, "recycled") == 1
    with pytest.raises(ProcessLookupError):
        os.kill(old, 0)
    _finish(pool, "hot", burner, "fresh-1")
    pool.recycle_cpu_s = 1e9


def test_whatever_reading_a_workers_answers_raises_drops_that_worker_only(
    pool: ModWorkerPool, metrics: QuoteMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth behind `mod_protocol`'s checks: a fault nobody foresaw (injected here, as
    a RecursionError from a deeply nested header once was) fails the worker's calls, not the
    engine step that pumps every worker's answers."""
    burner = pool.load(_bundle("burner", BURNER))
    assert _call(pool, "faulty", burner, "f-1") is not None
    real = mod_process.take_frames

    def unforeseen(inbox: bytearray) -> list[tuple[dict[str, object], bytes]]:
        monkeypatch.setattr(mod_process, "take_frames", real)  # once
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(mod_process, "take_frames", unforeseen)
    before = _restarts(metrics, "protocol")
    with pytest.raises(ModFailedError, match="burner.*answers could not be read .RuntimeError"):
        _call(pool, "faulty", burner, "f-2")
    assert _restarts(metrics, "protocol") == before + 1
    assert _call(pool, "faulty", burner, "f-3") is not None  # a fresh worker serves the tenant


def test_a_call_over_its_budget_is_counted_as_a_timeout(pool: ModWorkerPool, metrics: QuoteMetrics) -> None:
    burner = pool.load(_bundle("burner", BURNER))
    with pytest.raises(ModFailedError, match="budget"):
        _call(pool, "slow", burner, "sleep-1")
    assert _restarts(metrics, "timeout") == 1


BREAKER = """
import gc, os
from quote_mod_sdk import mod, ForwardPass

@mod
def breaker(event, actions):
    if isinstance(event, ForwardPass) and event.request_id.startswith("garble"):
        out = next(o for o in gc.get_objects() if type(o).__name__ == "Worker").out
        out.write(b"\\xff" * 64)  # a frame prefix announcing gigabytes, then junk
        out.flush()
    if isinstance(event, ForwardPass) and event.request_id.startswith("deep"):
        out = next(o for o in gc.get_objects() if type(o).__name__ == "Worker").out
        header = b"[" * 200000 + b"]" * 200000  # valid JSON, nested past any parser's recursion
        out.write(len(header).to_bytes(4, "big") + bytes(4) + header)
        out.flush()
    if isinstance(event, ForwardPass) and event.request_id.startswith("exit"):
        os._exit(3)
"""


def test_a_worker_that_breaks_the_protocol_or_exits_is_counted(pool: ModWorkerPool, metrics: QuoteMetrics) -> None:
    breaker = pool.load(_bundle("breaker", BREAKER))
    protocol, died = _restarts(metrics, "protocol"), _restarts(metrics, "died")
    with pytest.raises(ModFailedError, match="breaker.*protocol"):
        _call(pool, "breaking", breaker, "garble-1")
    with pytest.raises(ModFailedError, match="breaker.*protocol"):
        _call(pool, "breaking", breaker, "deep-1")
    with pytest.raises(ModFailedError, match="breaker.*exited with status 3"):
        _call(pool, "breaking", breaker, "exit-1")
    assert _restarts(metrics, "protocol") == protocol + 2 and _restarts(metrics, "died") == died + 1
    assert _call(pool, "breaking", breaker, "calm-1") is not None  # the tenant is served again


def test_a_cpu_clock_reads_its_process_and_nothing_once_it_is_gone() -> None:
    import subprocess
    import sys

    from quote_serving.runtime.mod_cpu import CpuClock

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass\ntime.sleep(30)",
        ]
    )
    clock = CpuClock(child.pid)
    try:
        deadline = time.monotonic() + 20
        while (clock.read() or 0.0) < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (clock.read() or 0.0) >= 0.2  # the child's own busy loop, read through the open descriptor
    finally:
        child.kill()
        child.wait()
    assert clock.read() is None  # reaped: the descriptor names that process, never a successor
    clock.close()
    assert clock.read() is None
