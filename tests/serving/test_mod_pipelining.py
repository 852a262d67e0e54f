"""Issue 13: calls pipelined on one worker (`runtime/mod_calls.py`). Several requests' calls wait in
one worker's FIFO at once, each ForwardPass row in a slot pair of its own (or piped when all are
taken); a call carries the events a noop answer implies (a ForwardPass its Sampled and Added, a
Sampled its Added) and all their answers come back for one send; a Finished is sent without
waiting. And the attacks on it: a worker that sends answers
nobody asked for, skips the paired answer, or hangs in a Finished nobody waits for is killed
and replaced, failing only its own tenant's calls.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterator

import numpy as np
import pytest

from quote_mod_sdk import actions as act
from quote_mod_sdk import events as ev
from quote_mod_sdk.errors import ModFailedError
from quote_serving.runtime.mod_calls import chain, wait_for
from quote_serving.runtime.mod_pool import ModWorkerPool

VOCAB = 64

TAGGER = """
import os
from quote_mod_sdk import mod, ForwardPass, Sampled, Added

@mod
def tagger(event, actions):
    # Each request's row comes back with its own tag added: a row mixed up between pipelined
    # calls (two calls sharing a slot) would show another request's tag.
    if isinstance(event, ForwardPass):
        return actions.adjust_logits(event.logits.clone() + int(event.request_id.split("-")[1]))
    if isinstance(event, Sampled) and event.request_id.startswith("force"):
        return actions.force_tokens([7])
    if isinstance(event, Added):
        return actions.force_tokens([os.getpid() % 50 + 1])
"""

FORGER = """
import json, os, struct, stat
from quote_mod_sdk import mod, Sampled

def frame(header):
    data = json.dumps(header).encode()
    return struct.pack(">II", len(data), 0) + data

@mod
def forger(event, actions):
    # Writes answers nobody asked for to every pipe it holds (one is the protocol's channel).
    if isinstance(event, Sampled):
        for fd in range(3, 64):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, frame({"ok": True, "action": "noop"}) * 3)
            except OSError:
                pass
"""

SLEEPER = """
import time
from quote_mod_sdk import mod, Added, Finished

@mod
def sleeper(event, actions):
    if isinstance(event, Added) and event.request_id.startswith("added"):
        time.sleep(60)  # the paired answer never comes in time
    if isinstance(event, Finished) and event.request_id.startswith("finished"):
        time.sleep(60)  # nobody waits for this answer, but its worker is still stuck
"""


CHAINER = """
from quote_mod_sdk import mod, ForwardPass, Sampled, Added

@mod
def chainer(event, actions):
    kind = event.request_id.split("-")[0]
    if isinstance(event, ForwardPass) and kind == "adjust":
        return actions.adjust_logits(event.logits.clone() + int(event.request_id.split("-")[1]))
    if isinstance(event, Sampled) and kind == "force":
        return actions.force_tokens([9])
    if isinstance(event, Sampled) and kind == "late":
        import time
        time.sleep(60)  # the Sampled sent with the ForwardPass never answers in time
    if isinstance(event, Added):
        return actions.force_tokens([event.added_tokens[0] + 1])  # proves it saw the Added it was sent
"""


def _bundle(name: str, source: str) -> dict[str, str]:
    return {"language": "python", "module": name, "entrypoint": name, "source": textwrap.dedent(source), "name": name}


@pytest.fixture(scope="module")
def pool() -> Iterator[ModWorkerPool]:
    workers = ModWorkerPool(None, budget_ms=1500, workers_per_tenant=1, monitor_interval_s=0.2)
    workers.start()
    yield workers
    workers.close()


def _row(tag: int) -> np.ndarray:
    return np.arange(VOCAB, dtype=np.float32) * 0 + 100 * tag


def test_pipelined_rows_never_mix_even_past_the_slot_pairs(pool: ModWorkerPool) -> None:
    tagger = pool.load(_bundle("tagger", TAGGER))
    n = pool.spec.row_pairs + 3  # more calls in flight than pairs: the rest are piped
    tickets = [pool.submit("rows", tagger, ev.ForwardPass(f"req-{i}", 1, _row(i))) for i in range(n)]
    wait_for(tickets, 30)
    workers = {t.queue for t in tickets}
    assert len(workers) == 1  # one worker answered them all, in order
    for i, ticket in enumerate(tickets):
        action = ticket.result()
        assert isinstance(action, act.AdjustLogits)
        assert np.array_equal(action.logits, np.full(VOCAB, 101.0 * i, dtype=np.float32))
    assert sorted(next(iter(workers)).free_pairs) == list(range(pool.spec.row_pairs))  # every pair back
    for i in range(n):
        pool.call("rows", tagger, ev.Finished(f"req-{i}", 2, "stop", []))


def test_a_sampled_and_its_added_take_one_send(pool: ModWorkerPool) -> None:
    tagger = pool.load(_bundle("tagger", TAGGER))
    added = ev.Added("pair-1", 1, [5], False, 4)
    ticket = pool.submit("pairs", tagger, ev.Sampled("pair-1", 1, 5), then=(added,))
    assert ticket.paired is not None
    wait_for([ticket, ticket.paired], 30)
    assert ticket.result() is act.NOOP  # the token stands ...
    forced = ticket.paired.result()  # ... so the worker ran the Added at once
    assert isinstance(forced, act.ForceTokens) and 1 <= forced.tokens[0] <= 50
    # A Sampled that replaces the token: the worker never runs the implied Added.
    other = pool.submit("pairs", tagger, ev.Sampled("force-2", 1, 5), then=(ev.Added("force-2", 1, [5], False, 4),))
    wait_for([other], 30)
    assert isinstance(other.result(), act.ForceTokens) and other.paired is not None and other.paired.discard
    after = pool.call("pairs", tagger, ev.ForwardPass("pair-3", 1, _row(3)))  # the stream is still aligned
    assert isinstance(after, act.AdjustLogits) and after.logits is not None and after.logits[0] == 303.0
    assert pool.restarts["protocol"] == 0


def test_a_forward_pass_its_sampled_and_its_added_take_one_send(pool: ModWorkerPool) -> None:
    chainer = pool.load(_bundle("chainer", CHAINER))

    def step(rid: str, token: int) -> list:  # type: ignore[type-arg]
        then = (ev.Sampled(rid, 1, token), ev.Added(rid, 1, [token], False, 4))
        row = _row(int(rid.split("-")[1]))
        return list(chain(pool.submit("chains", chainer, ev.ForwardPass(rid, 1, row), then=then)))

    plan, sampled, added = step("noop-1", 5)
    assert (sampled.event, added.event) == (ev.Sampled("noop-1", 1, 5), ev.Added("noop-1", 1, [5], False, 4))
    wait_for([plan, sampled, added], 30)
    assert plan.result() is act.NOOP and sampled.result() is act.NOOP  # ForwardPass and Sampled noop ...
    assert added.result() == act.ForceTokens([6])  # ... so the worker ran the Added it was sent at once
    # A ForwardPass answered with an edited row: neither Sampled nor Added runs.
    plan, sampled, added = step("adjust-2", 5)
    wait_for([plan], 30)
    assert isinstance(plan.result(), act.AdjustLogits) and plan.result().logits[0] == 202.0  # type: ignore[attr-defined]
    assert sampled.discard and added.discard and sampled.done and added.done
    # A Sampled that replaces the token: its Added never runs.
    plan, sampled, added = step("force-3", 5)
    wait_for([plan, sampled], 30)
    assert plan.result() is act.NOOP and sampled.result() == act.ForceTokens([9]) and added.discard
    after = pool.call("chains", chainer, ev.ForwardPass("adjust-4", 1, _row(4)))  # the stream is still aligned
    assert isinstance(after, act.AdjustLogits) and after.logits is not None and after.logits[0] == 404.0
    assert pool.restarts["protocol"] == 0


def test_a_chained_call_that_never_answers_is_a_timeout_on_its_event(pool: ModWorkerPool) -> None:
    chainer = pool.load(_bundle("chainer", CHAINER))
    before = pool.restarts["timeout"]
    then = (ev.Sampled("late-1", 1, 3), ev.Added("late-1", 1, [3], False, 4))
    plan, sampled, added = chain(pool.submit("late", chainer, ev.ForwardPass("late-1", 1, _row(1)), then=then))
    started = time.monotonic()
    wait_for([plan, sampled, added], 30)
    assert plan.result() is act.NOOP
    with pytest.raises(ModFailedError, match=r"chainer.*budget on Sampled"):
        sampled.result()
    with pytest.raises(ModFailedError, match="chainer"):
        added.result()
    assert time.monotonic() - started < 10 and pool.restarts["timeout"] == before + 1


def test_answers_nobody_asked_for_kill_only_that_worker(pool: ModWorkerPool) -> None:
    forger, tagger = pool.load(_bundle("forger", FORGER)), pool.load(_bundle("tagger", TAGGER))
    honest = pool.submit("honest", tagger, ev.ForwardPass("req-9", 1, _row(9)))
    before = pool.restarts["protocol"]
    ticket = pool.submit("forger", forger, ev.Sampled("forge-1", 1, 3))
    wait_for([ticket, honest], 30)
    deadline = time.monotonic() + 10
    while pool.restarts["protocol"] == before and time.monotonic() < deadline:
        time.sleep(0.1)  # the forged frames after the answer: found by a pump (here, the monitor's)
    assert pool.restarts["protocol"] == before + 1
    with pytest.raises(ModFailedError, match="forger"):
        pool.call("forger", forger, ev.ForwardPass("forge-1", 2, _row(1)))  # its request failed
    honest_row = honest.result().logits  # type: ignore[attr-defined]
    assert honest_row is not None and honest_row[0] == 909.0


def test_a_missing_paired_answer_is_a_timeout(pool: ModWorkerPool) -> None:
    sleeper = pool.load(_bundle("sleeper", SLEEPER))
    before = pool.restarts["timeout"]
    ticket = pool.submit("sleepy", sleeper, ev.Sampled("added-1", 1, 3), then=(ev.Added("added-1", 1, [3], False, 4),))
    assert ticket.paired is not None
    started = time.monotonic()
    wait_for([ticket, ticket.paired], 30)
    assert ticket.result() is act.NOOP
    with pytest.raises(ModFailedError, match=r"sleeper.*budget on Added"):
        ticket.paired.result()
    assert time.monotonic() - started < 10 and pool.restarts["timeout"] == before + 1


def test_a_finished_nobody_waits_for_still_cannot_hold_its_worker(pool: ModWorkerPool) -> None:
    sleeper = pool.load(_bundle("sleeper", SLEEPER))
    assert pool.call("stuck", sleeper, ev.ForwardPass("finished-1", 1, _row(1))) is act.NOOP
    first = pool._affinity[("stuck", "finished-1")].proc.pid
    before = pool.restarts["timeout"]
    started = time.monotonic()
    assert pool.call("stuck", sleeper, ev.Finished("finished-1", 2, "stop", [])) is act.NOOP  # at once
    assert time.monotonic() - started < 1
    deadline = time.monotonic() + 15
    while pool.restarts["timeout"] == before and time.monotonic() < deadline:
        time.sleep(0.1)  # the monitor finds the head call past its budget
    assert pool.restarts["timeout"] == before + 1
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    assert pool.call("stuck", sleeper, ev.ForwardPass("fresh-1", 1, _row(1))) is act.NOOP  # a new worker
