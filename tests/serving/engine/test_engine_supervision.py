"""The engine loop is supervised: nothing one request or its mod raises ends it (issues 13, 14).

Real `ModRuntime` + `EmbeddedBackend` on the tiny model; each attack runs next to an innocent
request that must complete, and the runtime must stay healthy for the next request.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from quote_mod_sdk import ForwardPass, mod
from quote_mod_sdk.generation import GenerationParams
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle, Snapshot
from quote_serving.runtime.rows import BadRow, checked_row
from quote_serving.runtime.supervision import EXIT_ENGINE_DIED


class _Custom(BaseException):
    pass


def _raising(exc: BaseException) -> Any:
    @mod
    def attacker(event: Any, actions: Any) -> Any:
        if isinstance(event, ForwardPass) and event.step == 1:
            raise exc
        return actions.noop()

    return attacker


@pytest.fixture
def runtime(make_backend: Callable[..., EmbeddedBackend], tokenizer: Any) -> Iterator[ModRuntime]:
    rt = ModRuntime(make_backend(), tokenizer, model_name="tiny", settings=RuntimeSettings(max_batch=8))
    rt.start()
    yield rt
    rt.stop()


def _run(runtime: ModRuntime, requests: list[GenerationRequest]) -> list[Snapshot]:
    async def go() -> list[Snapshot]:
        loop = asyncio.get_running_loop()
        handles = [runtime.submit(RequestHandle(r, loop)) for r in requests]
        return list(await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60))

    return asyncio.run(go())


def _request(rid: str, *, mod_: Any = None, seed: int | None = None) -> GenerationRequest:
    return GenerationRequest(
        request_id=rid,
        prompt_tokens=[1, 5, 9, 13],
        params=GenerationParams(max_tokens=6),
        sampling=SamplingParams(temperature=0.0, seed=seed),
        mod=mod_,
    )


@pytest.mark.parametrize(
    "exc",
    [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), _Custom("escape the loop")],
    ids=["SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"],
)
def test_a_mod_raising_a_base_exception_fails_only_its_own_request(runtime: ModRuntime, exc: BaseException) -> None:
    attacker, victim = _run(runtime, [_request("attacker", mod_=_raising(exc)), _request("victim")])
    assert attacker.finish_reason == "error" and attacker.error is not None
    assert "attacker" in attacker.error and type(exc).__name__ in attacker.error
    assert victim.finish_reason == "length" and victim.error is None and len(victim.output) == 6
    assert runtime.healthy
    (after,) = _run(runtime, [_request("after")])
    assert after.output == victim.output


def test_a_request_that_cannot_be_admitted_fails_alone(runtime: ModRuntime) -> None:
    # 2**64 does not fit torch's seed: admission raises; the edge validates it too, but the engine
    # must survive whatever reaches it.
    bad, good = _run(runtime, [_request("bad", seed=18446744073709551616), _request("good", seed=7)])
    assert bad.finished and bad.finish_reason == "error" and bad.error_kind == "engine_error"
    assert good.error is None and len(good.output) == 6
    assert runtime.healthy


def test_a_backend_failure_fails_the_batch_but_not_the_loop(runtime: ModRuntime) -> None:
    real_forward = runtime.backend.forward
    calls = {"n": 0}

    def flaky(ids: list[str]) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("backend bug")
        return real_forward(ids)

    runtime.backend.forward = flaky  # type: ignore[method-assign]
    (hit,) = _run(runtime, [_request("hit")])
    assert hit.error_kind == "engine_error"
    (after,) = _run(runtime, [_request("after")])
    assert after.error is None and len(after.output) == 6 and runtime.healthy


def test_a_dead_loop_turns_the_runtime_unhealthy_answers_everyone_and_calls_on_fatal(runtime: ModRuntime) -> None:
    died = threading.Event()
    runtime.on_fatal = died.set

    def broken(*_: Any, **__: Any) -> None:
        raise SystemExit("an engine bug, even in the error path")

    # Break the step and the error path behind it: only the supervisor is left.
    runtime.step = broken  # type: ignore[method-assign]
    runtime.fail = broken  # type: ignore[method-assign]
    (stuck,) = _run(runtime, [_request("stuck")])
    assert died.wait(10)
    assert stuck.finished and stuck.error_kind == "engine_error"
    assert not runtime.healthy
    (late,) = _run(runtime, [_request("late")])  # answered at once, never left hanging
    assert late.finished and late.error_kind == "engine_error"


class _EvilTensor(torch.Tensor):
    """A tensor subclass whose every torch op would run the attacker's code on the engine thread."""

    @classmethod
    def __torch_function__(cls, *args: Any, **kwargs: Any) -> Any:
        raise SystemExit("ran outside the budget")


def _returning(make_row: Callable[[Any], Any]) -> Any:
    @mod
    def attacker(event: Any, actions: Any) -> Any:
        if isinstance(event, ForwardPass):
            return actions.adjust_logits(make_row(event.logits))
        return actions.noop()

    return attacker


def _width(row: Any) -> int:
    return int(row.shape[-1])


HOSTILE_ROWS: dict[str, Callable[[Any], Any]] = {
    "strings": lambda row: np.array(["x"] * _width(row), dtype=object),
    "unicode": lambda row: np.array(["x"] * _width(row)),
    "nan": lambda row: torch.full((_width(row),), float("nan")),
    "plus_inf": lambda row: torch.full((_width(row),), float("inf")),
    "all_minus_inf": lambda row: torch.full((_width(row),), float("-inf")),
    "complex": lambda row: torch.zeros(_width(row), dtype=torch.complex64),
    "too_wide_2d": lambda row: torch.zeros(2, _width(row)),
    "subclass": lambda row: torch.zeros(_width(row)).as_subclass(_EvilTensor),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_ROWS))
def test_a_hostile_logits_row_fails_only_its_own_request(runtime: ModRuntime, name: str) -> None:
    attacker, victim = _run(runtime, [_request("attacker", mod_=_returning(HOSTILE_ROWS[name])), _request("victim")])
    assert attacker.finish_reason == "error" and attacker.error is not None and "attacker" in attacker.error
    assert victim.error is None and len(victim.output) == 6
    assert runtime.healthy


def test_checked_row_accepts_what_mods_legitimately_return() -> None:
    cpu = torch.device("cpu")
    masked = torch.zeros(4)
    masked[1] = float("-inf")
    assert checked_row(masked, 4, cpu).tolist()[1] == float("-inf")
    assert checked_row(np.arange(4, dtype=np.int64), 4, cpu).dtype == torch.float32
    assert checked_row(torch.zeros(1, 4, dtype=torch.bfloat16), 4, cpu).shape == (4,)
    with pytest.raises(BadRow, match="list"):
        checked_row([0.0] * 4, 4, cpu)
    with pytest.raises(BadRow, match="3 values"):
        checked_row(np.zeros(3), 4, cpu)


def test_exit_process_soon_ends_the_process_with_its_status() -> None:
    """What `quote serve` wires to `on_fatal`: a real process exits (status 70) for its supervisor."""
    code = "from quote_serving.runtime.supervision import exit_process_soon\nimport time\nexit_process_soon(0.1)\ntime.sleep(60)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.returncode == EXIT_ENGINE_DIED == 70, done.stderr
