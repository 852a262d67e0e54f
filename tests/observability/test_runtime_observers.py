"""The runtime's observer hook: when observers are called, what timings they see, and that a
failing observer never fails a request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from quote_serving.runtime.observers import RequestTimings, RuntimeObserver
from tests.observability.conftest import Local
from tests.observability.support import MODEL, chat_body


class Recorder(RuntimeObserver):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.finished: dict[str, tuple[RequestTimings, Any, str | None]] = {}

    def on_submitted(self, handle: Any) -> None:
        self.calls.append(("submitted", handle.request_id))

    def on_admitted(self, handle: Any) -> None:
        self.calls.append(("admitted", handle.request_id))

    def on_first_token(self, handle: Any) -> None:
        self.calls.append(("first_token", handle.request_id))

    def on_finished(self, handle: Any, trace: Any, error_kind: str | None) -> None:
        self.calls.append(("finished", handle.request_id))
        self.finished[handle.request_id] = (handle.timings, trace, error_kind)


class Broken(RuntimeObserver):
    def on_submitted(self, handle: Any) -> None:
        raise RuntimeError("observer bug")

    def on_finished(self, handle: Any, trace: Any, error_kind: str | None) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
def observers(local: Local) -> Iterator[tuple[Recorder, Broken]]:
    recorder, broken = Recorder(), Broken()
    local.ctx.runtime.observers[:0] = [broken, recorder]
    yield recorder, broken
    local.ctx.runtime.observers.remove(broken)
    local.ctx.runtime.observers.remove(recorder)


def test_observers_see_each_moment_once_in_order_with_ordered_timings(observers, http_local: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    recorder, _ = observers
    response = http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/rewriter"))
    assert response.status_code == 200  # the broken observer did not fail it
    rid = response.json()["id"]
    assert [name for name, r in recorder.calls if r == rid] == ["submitted", "admitted", "first_token", "finished"]
    timings, trace, error_kind = recorder.finished[rid]
    assert error_kind is None and trace.request_id == rid
    assert (
        timings.submitted_ns
        <= timings.admitted_ns
        <= timings.prefilled_ns
        <= timings.first_token_ns
        <= timings.finished_ns
    )
    assert len(timings.step_end_ns) == max(t.step for t in trace.tokens)
    assert timings.step_end_ns == sorted(timings.step_end_ns)


def test_observers_hear_why_a_mod_failed(observers, http_local: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    recorder, _ = observers
    response = http_local.post("/v1/chat/completions", json=chat_body(f"{MODEL}/failer"))
    assert response.status_code == 422
    (_, trace, error_kind), *_ = [v for v in recorder.finished.values() if v[1].mod == "failer"]
    assert error_kind == "exception" and trace.finish_reason == "error"


def test_step_time_maps_a_step_to_when_it_ended() -> None:
    timings = RequestTimings(submitted_ns=1, admitted_ns=5, step_end_ns=[10, 20, 30])
    assert [timings.step_time(s) for s in (0, 1, 3, 9)] == [5, 10, 30, 30]
