"""Issue 13: logits rows cross to mod workers through shared memory (`RowSlots`): a mod sees a
zero-copy row that behaves like today's, and a hostile worker that scribbles on the region,
truncates it or returns rows of the wrong size or type fails (at most) its own request."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from quote_mod_sdk import actions as act
from quote_mod_sdk import events as ev
from quote_mod_sdk.errors import InvalidActionError, ModFailedError
from quote_serving.runtime.mod_pool import ModWorkerPool, RemoteMod
from quote_serving.runtime.rows import BadRow, checked_row

VOCAB = 5000

ROWS = """
import numpy as np
import torch
from quote_mod_sdk import mod, ForwardPass

@mod
def rows(event, actions):
    if not isinstance(event, ForwardPass):
        return None
    how = event.request_id.split("-")[0]
    row = event.logits
    assert isinstance(row, torch.Tensor) and row.dtype == torch.float32 and row.shape == (5000,)
    assert float(row[7]) == 7.0 and float(row.to_numpy()[9]) == 9.0  # what the engine sent
    if how == "clone":
        out = row.clone(); out[:] = -1e9; out[3] = 0.0
        return actions.adjust_logits(out)
    if how == "inplace":
        row[0] = -5.0
        return actions.adjust_logits(row)
    if how == "numpy":
        return actions.adjust_logits(row.numpy() * 2)
    if how == "temp":
        return actions.adjust_logits(token_temp=0.5)
    if how == "longer":
        return actions.adjust_logits(np.zeros(5001, dtype=np.float32))
    if how == "huge":
        return actions.adjust_logits(torch.zeros(1 << 19))
    if how == "strings":
        return actions.adjust_logits(np.array(["x"] * 5000))
    if how == "ints":
        return actions.adjust_logits(torch.arange(5000))
"""

SCRIBBLER = """
import gc, os, random, threading, time
import numpy as np
from quote_mod_sdk import mod, ForwardPass

def slots():
    return next(o for o in gc.get_objects() if type(o).__name__ == "RowSlots")

def scribble(s):
    while True:
        junk = random.choice([np.nan, np.inf, -np.inf, 1e38, 0.0])
        s._out[: random.randrange(1, s.capacity)] = junk
        s._in[: random.randrange(1, s.capacity)] = junk
        s._out.view(np.uint8)[: 1000] = 0x41  # "AAAA…": text where floats belong
        time.sleep(0.001)

@mod
def scribbler(event, actions):
    if isinstance(event, ForwardPass):
        s = slots()
        if not any(t.name == "scribble" for t in threading.enumerate()):
            threading.Thread(target=scribble, args=(s,), name="scribble", daemon=True).start()
        try:
            os.ftruncate(s.fd, 0)  # the engine's mapping would SIGBUS if this worked
            said = 1
        except OSError:
            said = 0
        return actions.adjust_logits(event.logits.clone() + said)
"""


def _bundle(name: str, source: str) -> dict[str, str]:
    return {"language": "python", "module": name, "entrypoint": name, "source": textwrap.dedent(source), "name": name}


@pytest.fixture(scope="module")
def pool() -> Iterator[ModWorkerPool]:
    workers = ModWorkerPool(None, budget_ms=10000, idle_cpu_s=1e9)  # the scribbler's thread may run
    workers.start()
    yield workers
    workers.close()


@pytest.fixture(scope="module")
def rows(pool: ModWorkerPool) -> RemoteMod:
    return pool.load(_bundle("rows", ROWS))


@pytest.fixture(scope="module")
def scribbler(pool: ModWorkerPool) -> RemoteMod:
    return pool.load(_bundle("scribbler", SCRIBBLER))


def _call(pool: ModWorkerPool, tenant: str, mod: RemoteMod, rid: str, row: Any = None) -> Any:
    row = torch.arange(VOCAB, dtype=torch.float32) if row is None else row
    return pool.invoker(tenant)(mod, ev.ForwardPass(rid, 1, row), None, None)


def test_a_mods_row_is_a_view_that_works_like_today(pool: ModWorkerPool, rows: RemoteMod) -> None:
    base = np.arange(VOCAB, dtype=np.float32)
    clone = _call(pool, "t", rows, "clone-1").logits
    assert clone[3] == 0.0 and clone[4] == -1e9 and clone.shape == (VOCAB,)
    inplace = _call(pool, "t", rows, "inplace-1").logits
    assert inplace[0] == -5.0 and np.array_equal(inplace[1:], base[1:])
    assert np.array_equal(_call(pool, "t", rows, "numpy-1").logits, base * 2)
    assert np.array_equal(_call(pool, "t", rows, "ints-1").logits, base)
    temp = _call(pool, "t", rows, "temp-1")
    assert isinstance(temp, act.AdjustLogits) and temp.logits is None and temp.token_temp == 0.5
    big = torch.arange(300_000, dtype=torch.float32)  # over a slot: piped both ways instead
    with pytest.raises(ModFailedError):  # the mod's own assert on the shape (5000) fails
        _call(pool, "t", rows, "clone-2", big)


def test_rows_of_the_wrong_size_or_type_fail_their_own_call(pool: ModWorkerPool, rows: RemoteMod) -> None:
    for how in ("longer", "huge"):
        with pytest.raises(InvalidActionError, match="size"):
            _call(pool, "t", rows, f"{how}-1")
    with pytest.raises(ModFailedError, match="ValueError"):
        _call(pool, "t", rows, "strings-1")
    assert _call(pool, "t", rows, "clone-3").logits[3] == 0.0  # the worker serves on


def test_a_worker_scribbling_on_its_region_harms_no_one_else(
    pool: ModWorkerPool, rows: RemoteMod, scribbler: RemoteMod
) -> None:
    first = _call(pool, "hostile", scribbler, "s-1")
    assert np.isfinite(first.logits).sum() >= 0  # garbage, but a row of the expected size
    assert first.logits.shape == (VOCAB,)
    stop = threading.Event()

    def attack() -> list[Any]:
        answers = []
        while not stop.is_set():
            action = _call(pool, "hostile", scribbler, "s-1")
            kept = action.logits.copy()
            time.sleep(0.01)  # the scribbler keeps writing: the engine's copy must not change
            assert np.array_equal(action.logits, kept, equal_nan=True)
            answers.append(action)
        return answers

    with ThreadPoolExecutor(2) as threads:
        hostile = threads.submit(attack)
        for i in range(30):
            row = _call(pool, "victim", rows, f"clone-v{i}").logits
            assert row[3] == 0.0 and (np.delete(row, 3) == -1e9).all()
        stop.set()
        answers = hostile.result()
    assert answers and all(a.logits.shape == (VOCAB,) for a in answers)
    assert not any(a.logits[5] == 6.0 for a in answers if np.isfinite(a.logits[5]))  # ftruncate was refused
    scribbled = [a for a in answers if np.isnan(a.logits).any() or np.isposinf(a.logits).any()]
    for action in scribbled:  # what the runtime does next: the request fails, alone
        with pytest.raises(BadRow):
            checked_row(action.logits, VOCAB, torch.device("cpu"))


STARVER = """
import threading, time
from quote_mod_sdk import mod, ForwardPass

def hold_the_gil():
    time.sleep(0.3)
    sum(range(10**13))  # one C call: the worker's main thread never reads its pipe again

@mod
def starver(event, actions):
    if isinstance(event, ForwardPass) and event.step == 1:
        threading.Thread(target=hold_the_gil, daemon=True).start()
"""


def test_a_worker_that_stops_reading_cannot_hold_a_large_frame(pool: ModWorkerPool) -> None:
    starver = pool.load(_bundle("starver", STARVER))
    _call(pool, "starving", starver, "g-1")
    time.sleep(1.0)
    big = torch.zeros(300_000)  # over a slot: piped, far more than a pipe's buffer
    started = time.monotonic()
    with pytest.raises(ModFailedError, match="starver.*budget"):
        pool.invoker("starving")(starver, ev.ForwardPass("g-1", 2, big), None, None)
    assert time.monotonic() - started < pool.budget_s + 5
