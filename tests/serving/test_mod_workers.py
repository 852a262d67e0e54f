"""Issue 13: `ModWorkerPool` with real worker processes: tenants are apart, every confinement layer
this host offers is applied, and a worker's answers are re-validated as untrusted data."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from quote_mod_sdk import events as ev
from quote_mod_sdk.conversation import conversation_scope
from quote_mod_sdk.errors import InvalidActionError
from quote_serving.runtime.mod_answers import decode_action, returned_row
from quote_serving.runtime.mod_pool import ModWorkerPool, RemoteMod
from quote_serving.runtime.mod_slots import RowSlots

SNOOP = """
import gc
from quote_mod_sdk import mod, ForwardPass

@mod
def snoop(event, actions):
    if isinstance(event, ForwardPass):
        needle = "-".join(["TENANT", "A", "PRIVATE"])
        hit = False
        for o in gc.get_objects():
            items = o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()
            for x in items:  # one level down too: a dict of strings alone is not tracked by gc
                inner = list(x.values()) if isinstance(x, dict) else [x]
                hit = hit or any(isinstance(y, str) and needle in y for y in inner)
        return actions.force_output([1] if hit else [0])
"""


def _bundle(name: str, source: str) -> dict[str, str]:
    return {"language": "python", "module": name, "entrypoint": name, "source": textwrap.dedent(source), "name": name}


@pytest.fixture(scope="module")
def pool() -> Iterator[ModWorkerPool]:
    workers = ModWorkerPool(None, budget_ms=15000, memory_mb=1536)  # a gc scan of torch's objects is slow
    workers.start()
    yield workers
    workers.close()


@pytest.fixture(scope="module")
def snoop(pool: ModWorkerPool) -> RemoteMod:
    return pool.load(_bundle("snoop", SNOOP))


def test_every_layer_is_applied_or_named(pool: ModWorkerPool) -> None:
    assert set(pool.layers) == {"priority", "rlimits", "no_new_privs", "landlock", "seccomp"}
    assert pool.layers["rlimits"] == "applied" and pool.layers["no_new_privs"] == "applied"
    assert pool.layers["seccomp"] == "applied"  # libseccomp2 is on the image
    assert pool.layers["landlock"] == "applied"  # this kernel offers Landlock (ABI 7)
    assert pool.layers["priority"] == "applied"


def test_a_loaded_mod_keeps_its_metadata_and_no_code_here(pool: ModWorkerPool, snoop: RemoteMod) -> None:
    assert snoop.name == "snoop" and snoop.max_backtrack is None
    with pytest.raises(RuntimeError):
        snoop.fn(None, None)


def _forward(pool: ModWorkerPool, tenant: str, mod: RemoteMod, rid: str, messages: list[dict[str, str]]) -> Any:
    event = ev.ForwardPass(rid, 1, np.zeros(8, dtype=np.float32))
    with conversation_scope(rid, messages):
        return pool.invoker(tenant)(mod, event, None, None)


def test_one_tenants_prompt_is_not_in_another_tenants_worker(pool: ModWorkerPool, snoop: RemoteMod) -> None:
    secret = [{"role": "user", "content": "TENANT-A-PRIVATE words"}]
    assert _forward(pool, "tenant-a", snoop, "a-1", secret).tokens == [1]  # the check can see a leak
    assert _forward(pool, "tenant-b", snoop, "b-1", [{"role": "user", "content": "hi"}]).tokens == [0]


def test_hostile_answers_are_refused() -> None:
    forward = ev.ForwardPass("r", 1, np.zeros(4, dtype=np.float32))
    hostile: list[tuple[dict[str, Any], bytes]] = [
        ({"action": "adjust_prefill", "tokens": [1]}, b""),  # not valid on ForwardPass
        ({"action": "force_tokens", "tokens": [-1]}, b""),
        ({"action": "force_tokens", "tokens": ["1"]}, b""),
        ({"action": "backtrack"}, b""),
        ({"action": "adjust_logits", "logits": True}, b"\x00\x00\x00"),
        ({"action": "__import__"}, b""),
    ]
    slots = RowSlots.create(16)

    def decode(answer: dict[str, Any], blob: bytes) -> Any:
        logits = returned_row(answer, blob, slots, 4) if answer.get("action") == "adjust_logits" else None
        return decode_action(forward, answer, logits)

    for answer, blob in hostile:
        with pytest.raises(InvalidActionError):
            decode(answer, blob)
    wrong_rows: list[tuple[dict[str, Any], bytes]] = [
        ({"action": "adjust_logits", "logits": True}, np.ones(5, np.float32).tobytes()),  # the wrong size
        ({"action": "adjust_logits", "logits": "slot", "n": 5}, b""),
        ({"action": "adjust_logits", "logits": "slot", "n": 1 << 40}, b""),  # never a read past the slot
        ({"action": "adjust_logits", "logits": "slot", "n": "4"}, b""),
    ]
    for answer, blob in wrong_rows:
        with pytest.raises(InvalidActionError):
            decode(answer, blob)
    row = decode({"action": "adjust_logits", "logits": True}, np.ones(4, np.float32).tobytes())
    assert np.array_equal(row.logits, np.ones(4, np.float32))
    slots.put_output(np.full(4, 2.0, np.float32))
    row = decode({"action": "adjust_logits", "logits": "slot", "n": 4}, b"")
    assert np.array_equal(row.logits, np.full(4, 2.0, np.float32))
    slots.close()
