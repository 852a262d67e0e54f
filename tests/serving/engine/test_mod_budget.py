"""The inline mods' budget (`runtime/budget.py`): its watchdog sleeps while no call comes, and a
call after that sleep is still interrupted at its budget (the attack: a mod that spins forever,
sent to a replica that had gone quiet)."""

from __future__ import annotations

import contextlib
import time

import pytest

from quote_mod_sdk import ForwardPass, mod
from quote_mod_sdk.errors import ModFailedError
from quote_mod_sdk.mod import ACTIONS
from quote_serving.runtime.budget import ModBudget


@mod
def spinner(event, actions):  # type: ignore[no-untyped-def]
    while True:
        with contextlib.suppress(Exception):  # the budget's exception is not an Exception: still stopped
            sum(range(1000))


@mod
def quiet(event, actions):  # type: ignore[no-untyped-def]
    return None


@pytest.mark.timeout(30)  # a watchdog that never wakes again would leave the spinner running
def test_a_spinning_mod_is_stopped_after_the_watchdog_went_to_sleep() -> None:
    budget = ModBudget(100, idle_after_s=0.05)
    try:
        event = ForwardPass("r", 1, [0.0, 1.0])
        budget(quiet, event, ACTIONS, None)  # a call: the watchdog polls
        deadline = time.monotonic() + 5
        while budget._armed.is_set() and time.monotonic() < deadline:  # idle: it sleeps
            time.sleep(0.01)
        assert not budget._armed.is_set()
        started = time.monotonic()
        with pytest.raises(ModFailedError, match=r"spinner.*100 ms budget on ForwardPass") as failed:
            budget(spinner, event, ACTIONS, None)
        assert failed.value.kind == "timeout" and time.monotonic() - started < 2
        budget(quiet, event, ACTIONS, None)  # the next call runs normally
    finally:
        budget.close()
