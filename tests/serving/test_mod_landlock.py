"""Issue 13: Landlock in mod workers. A hostile mod, called through the pool like any other, finds
no file outside what Python needs (not /etc/passwd, not the engine's /proc entries or working
directory) and can write nowhere; its own bundle, the tokenizer and the SDK's strategies work."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

from quote_mod_sdk import events as ev
from quote_serving.models.tiny import build_tiny_tokenizer
from quote_serving.runtime.mod_landlock import abi_version
from quote_serving.runtime.mod_pool import ModWorkerPool, RemoteMod

PROBER = """
import os
from quote_mod_sdk import mod, ForwardPass

ATTEMPTS = {attempts!r}

def tried(kind, path):
    try:
        if kind == "read":
            with open(path, "rb") as f:
                f.read(1)
        elif kind == "list":
            os.listdir(path)
        else:
            with open(path, "w") as f:
                f.write("x")
        return 1
    except OSError:
        return 0

@mod
def prober(event, actions):
    if isinstance(event, ForwardPass):
        return actions.force_tokens([tried(kind, path.format(ppid=os.getppid())) for kind, path in ATTEMPTS])
"""

SDK_USER = """
from quote_mod_sdk import mod, ForwardPass
from quote_mod_sdk.strategies import ChoicesStrat

@mod
def sdk_user(event, actions, tokenizer):
    if isinstance(event, ForwardPass):
        run = ChoicesStrat(["yes", "no"]).compile(tokenizer).start()
        ids = tokenizer.encode("hello yes", add_special_tokens=False)
        assert tokenizer.decode(ids) == "hello yes"
        allowed = int(run.allowed_mask().sum())
        return actions.force_tokens([1 if allowed > 0 else 0, len(ids)])
"""

ENGINE_CWD = os.getcwd()
ATTEMPTS = [
    ("read", "/etc/passwd"),
    ("read", "/proc/{ppid}/environ"),
    ("read", "/proc/{ppid}/cmdline"),
    ("read", "/proc/1/environ"),
    ("list", ENGINE_CWD),
    ("read", os.path.join(ENGINE_CWD, "pyproject.toml")),
    ("write", "/tmp/quote-landlock-probe"),
    ("write", "landlock-probe-in-its-cwd"),
    ("write", "/dev/shm/quote-landlock-probe"),
]


def _bundle(name: str, source: str) -> dict[str, str]:
    return {"language": "python", "module": name, "entrypoint": name, "source": textwrap.dedent(source), "name": name}


@pytest.fixture(scope="module")
def pool() -> Iterator[ModWorkerPool]:
    workers = ModWorkerPool(build_tiny_tokenizer(), budget_ms=20000)
    workers.start()
    yield workers
    workers.close()


def _forward(pool: ModWorkerPool, mod: RemoteMod) -> list[int]:
    event = ev.ForwardPass("r-1", 1, np.zeros(8, dtype=np.float32))
    return list(pool.invoker("tenant")(mod, event, None, None).tokens)


def test_the_kernel_offers_landlock_and_workers_apply_it(pool: ModWorkerPool) -> None:
    assert abi_version() >= 4  # ABI 7 on this host: filesystem and TCP
    assert pool.layers["landlock"] == "applied"


def test_a_mod_reaches_no_file_beyond_what_python_needs(pool: ModWorkerPool) -> None:
    for _, path in ATTEMPTS:  # each attempt works from the engine: only the worker is confined
        if not path.startswith(("/proc/{", "/tmp", "landlock", "/dev/shm")):
            assert os.path.exists(path)
    prober = pool.load(_bundle("prober", PROBER.format(attempts=ATTEMPTS)))
    assert _forward(pool, prober) == [0] * len(ATTEMPTS)
    assert not os.path.exists("/tmp/quote-landlock-probe")


def test_a_mod_still_uses_its_bundle_the_tokenizer_and_strategies(pool: ModWorkerPool) -> None:
    sdk_user = pool.load(_bundle("sdk_user", SDK_USER))
    allowed, tokens = _forward(pool, sdk_user)
    assert allowed == 1 and tokens >= 2
