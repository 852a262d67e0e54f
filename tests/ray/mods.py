"""Mods the Ray tests register: one that marks its output, one that is slow (to kill mid-request)."""

from __future__ import annotations

import time

from quote_mod_sdk import ForwardPass, Prefilled, mod

MARK = " MOD-RAN-HERE"


@mod(max_backtrack=0)
def mark(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    """Replace the whole output with MARK: proves the engine replica ran the mod."""
    if isinstance(event, Prefilled):
        return actions.force_output(tokenizer.encode(MARK, add_special_tokens=False))
    return actions.noop()


@mod(max_backtrack=0)
def slow(event, actions):  # type: ignore[no-untyped-def]
    """40 ms per decode step: a request of a few hundred tokens stays in flight for seconds."""
    if isinstance(event, ForwardPass):
        time.sleep(0.04)
    return actions.noop()


@mod(max_backtrack=0)
def where(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    """Says what its process can see of the replica: Ray's and Quote's environment."""
    if isinstance(event, Prefilled):
        import os

        seen = sorted(k for k in os.environ if k.startswith(("RAY", "QUOTE")))
        return actions.force_output(tokenizer.encode(f" ENV {len(seen)}", add_special_tokens=False))
    return actions.noop()


@mod(max_backtrack=0)
def vanish(event, actions):  # type: ignore[no-untyped-def]
    """Ends whatever process runs it."""
    if isinstance(event, ForwardPass):
        import os

        os._exit(0)
    return actions.noop()
