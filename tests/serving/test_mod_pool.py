"""Issue 13: `ModWorkerPool` called from many threads at once, as the runtime's per-request mod
threads do: tenants never wait on each other, a request's calls stay on one worker, a tenant gets
at most `workers_per_tenant` workers of its own, and a new tenant's first call takes the warm spare."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from quote_mod_sdk import events as ev
from quote_serving.runtime.mod_pool import ModWorkerPool, RemoteMod

PID = """
import os, time
from quote_mod_sdk import mod, ForwardPass

@mod
def pid(event, actions):
    if isinstance(event, ForwardPass):
        time.sleep({"slow": 3.0, "steady": 0.2}.get(event.request_id.split("-")[0], 0.0))
        return actions.force_tokens([os.getpid()])
"""


def _bundle(name: str, source: str) -> dict[str, str]:
    return {"language": "python", "module": name, "entrypoint": name, "source": textwrap.dedent(source), "name": name}


@pytest.fixture(scope="module")
def pool() -> Iterator[ModWorkerPool]:
    workers = ModWorkerPool(None, budget_ms=10000, workers_per_tenant=2)
    workers.start()
    yield workers
    workers.close()


@pytest.fixture(scope="module")
def pid(pool: ModWorkerPool) -> RemoteMod:
    """Answers its worker's pid; requests named slow-… take 3 s a call, steady-… 0.2 s."""
    return pool.load(_bundle("pid", PID))


def _worker_pid(pool: ModWorkerPool, tenant: str, mod: RemoteMod, rid: str) -> int:
    action = pool.invoker(tenant)(mod, ev.ForwardPass(rid, 1, np.zeros(8, dtype=np.float32)), None, None)
    return int(action.tokens[0])


def _finish(pool: ModWorkerPool, tenant: str, mod: RemoteMod, rid: str) -> None:
    pool.invoker(tenant)(mod, ev.Finished(rid, 2, "stop", []), None, None)


def test_the_first_call_of_a_new_tenant_takes_the_warm_spare(pool: ModWorkerPool, pid: RemoteMod) -> None:
    assert pool.wait_for_spare(120)
    spare = pool._spare
    assert spare is not None
    started = time.monotonic()
    assert _worker_pid(pool, "tenant-new", pid, "new-1") == spare.pid
    assert time.monotonic() - started < 1.5  # a spawn (torch import) takes several seconds here
    _finish(pool, "tenant-new", pid, "new-1")


def test_a_slow_tenant_does_not_delay_another(pool: ModWorkerPool, pid: RemoteMod) -> None:
    _worker_pid(pool, "tenant-fast", pid, "warm")  # the fast tenant has its worker already
    with ThreadPoolExecutor(4) as threads:
        stalled = threads.submit(_worker_pid, pool, "tenant-slow", pid, "slow-1")
        time.sleep(0.5)  # the slow call is in flight
        started = time.monotonic()
        fast = [threads.submit(_worker_pid, pool, "tenant-fast", pid, "warm") for _ in range(5)]
        [f.result() for f in fast]
        took = time.monotonic() - started
        assert not stalled.done()
        assert took < 1.5
        slow_pid = stalled.result()
    assert slow_pid not in {f.result() for f in fast}  # a worker never serves two tenants
    _finish(pool, "tenant-slow", pid, "slow-1")
    _finish(pool, "tenant-fast", pid, "warm")


def test_a_requests_calls_stay_on_one_worker_of_its_tenant(pool: ModWorkerPool, pid: RemoteMod) -> None:
    tenant = "tenant-affinity"
    rids = [f"steady-{i}" for i in range(4)]
    _worker_pid(pool, tenant, pid, rids[0])  # one busy worker: the next request gets a second one
    assert pool.wait_for_spare(120)

    def steps(rid: str) -> set[int]:
        return {_worker_pid(pool, tenant, pid, rid) for _ in range(2)}

    with ThreadPoolExecutor(4) as threads:
        seen = list(threads.map(steps, rids))
    assert all(len(pids) == 1 for pids in seen)  # per-request state lives on one worker
    assert len(set.union(*seen)) == 2  # spread over the tenant's workers, never above the cap
    assert len(pool._groups[tenant]) == 2
    for rid in rids:
        _finish(pool, tenant, pid, rid)
    assert not any(key[0] == tenant for key in pool._affinity)  # Finished drops the affinity
