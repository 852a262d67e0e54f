"""Mods the gateway tests publish to the registry (serialize_mod reads this file's source)."""

from __future__ import annotations

import time

from quote_mod_sdk import ForwardPass, Prefilled, mod


@mod(max_backtrack=0)
def plain(event, actions):  # type: ignore[no-untyped-def]
    """Streams as it comes; changes nothing."""
    return actions.noop()


@mod(max_backtrack=0)
def slow(event, actions):  # type: ignore[no-untyped-def]
    """Holds its request for a second before the first token, so requests overlap in the tests."""
    if isinstance(event, Prefilled):
        time.sleep(1.0)
    return actions.noop()


@mod(max_backtrack=0)
def crawl(event, actions):  # type: ignore[no-untyped-def]
    """Takes 50 ms a token: a stream long enough for a client to leave in the middle."""
    if isinstance(event, ForwardPass):
        time.sleep(0.05)
    return actions.noop()
