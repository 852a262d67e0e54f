"""SPEC.md's conformance suite, run through the SGLang runtime, bridge and hooks on a CPU fake scheduler.

The suite's own tests (imported below, collected here with this module's `engine` fixture) drive
`SGLangModRuntime` exactly as on a GPU; only SGLang's scheduler is replaced by `FakeScheduler`,
which checks on every forward that each request's KV holds exactly its tokens. Twice: with the
in-place KV trim, and with every edit going through the radix cache (requeue).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.conftest import Engine
from tests.conformance.test_mod_contract import *  # noqa: F403  (the suite, collected against this module's engine)

from .conftest import FakeSGLangRuntime


@pytest.fixture(scope="module", params=["trim", "requeue"])
def engine(request: pytest.FixtureRequest, tiny: Any) -> Iterator[Engine]:
    runtime = FakeSGLangRuntime(tiny.model, tiny.tokenizer, inplace_trim=request.param == "trim")
    runtime.start()
    yield Engine(f"sglang-fake-{request.param}", tiny.model, tiny.tokenizer, runtime)
    runtime.stop()
