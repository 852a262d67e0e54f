"""Per-call time budgets for mods that run inline on the engine thread.

Mods run on the engine thread (no thread hop per call: three calls a token would cost more
than a tiny model's forward). A watchdog thread watches the call in flight; when it outlives its
budget the watchdog raises `_Overdue` inside the engine thread (CPython's async exceptions), so
a mod stuck in a Python loop is interrupted. `_Overdue` derives from BaseException: a mod's own
`except Exception` cannot swallow it. A mod blocked inside a C call (e.g. `time.sleep`) is
interrupted when that call returns; the request fails either way.

Race-free by construction: arming/disarming and firing take one lock; `disarm` cancels a
pending async exception that has not been delivered yet and reports the timeout itself. The
watchdog polls while calls come (every few ms), and after a second without one sleeps until the
next call arms it: an idle replica, or one whose mods all run in worker processes, has no thread
waking 200 times a second to take the GIL from the engine.
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass
from typing import Any

from quote_mod_sdk.actions import Action, ActionBuilder
from quote_mod_sdk.errors import ModFailedError
from quote_mod_sdk.events import ModEvent
from quote_mod_sdk.mod import Mod

__all__ = ["ModBudget"]


class _Overdue(BaseException):
    """Raised inside the engine thread when the running mod call exceeded its budget."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


@dataclass
class _Call:
    thread_id: int
    deadline: float
    fired: bool = False


class ModBudget:
    """Invokes mods with a per-call budget (milliseconds); usable as a `ModInvoker`."""

    def __init__(self, budget_ms: float, *, poll_s: float = 0.005, idle_after_s: float = 1.0) -> None:
        self.budget_s = budget_ms / 1000
        self._poll_s = poll_s
        self._idle_after_s = idle_after_s
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._stop = threading.Event()
        self._armed = threading.Event()  # cleared while the watchdog sleeps for want of calls
        self._armed.set()
        self._last_armed = time.monotonic()
        self._watchdog = threading.Thread(target=self._watch, name="quote-mod-watchdog", daemon=True)
        self._watchdog.start()

    def __call__(self, mod: Mod, event: ModEvent, actions: ActionBuilder, tokenizer: Any) -> Action:
        call = self._arm()
        try:
            try:
                return mod(event, actions, tokenizer)
            finally:
                self._disarm(call)
        except _Overdue:
            raise ModFailedError(
                f"mod {mod.name!r} exceeded its {self.budget_s * 1000:.0f} ms budget on {type(event).__name__}",
                mod=mod.name,
                kind="timeout",
            ) from None
        except BaseException as exc:
            # A mod's SystemExit/KeyboardInterrupt/any BaseException must end its request, never
            # the engine thread: turned into the request-scoped failure the SDK loop understands.
            raise ModFailedError(
                f"mod {mod.name!r} raised {type(exc).__name__}: {exc}", mod=mod.name, kind="exception"
            ) from None

    def close(self) -> None:
        self._stop.set()
        self._armed.set()

    def _arm(self) -> _Call:
        now = time.monotonic()
        call = _Call(threading.get_ident(), now + self.budget_s)
        with self._lock:
            self._calls[call.thread_id] = call
            self._last_armed = now
        if not self._armed.is_set():  # the watchdog went to sleep: wake it for this call
            self._armed.set()
        return call

    def _disarm(self, call: _Call) -> None:
        with self._lock:
            self._calls.pop(call.thread_id, None)
            if call.fired:
                _raise_in(call.thread_id, None)  # cancel it if not delivered yet...
        if call.fired:
            raise _Overdue  # ...and report it here, inside the guarded block

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            now = time.monotonic()
            with self._lock:
                idle = not self._calls and now - self._last_armed > self._idle_after_s
                if idle:  # under the lock: an `_arm` after this sees the event cleared and sets it
                    self._armed.clear()
            if idle:
                self._armed.wait()
                continue
            with self._lock:
                for call in self._calls.values():
                    if not call.fired and now > call.deadline:
                        call.fired = True
                        _raise_in(call.thread_id, _Overdue)
