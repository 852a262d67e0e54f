"""The mods the benchmarks measure, defined once so every bench compares the same work.

    noop           answers every event with nothing: the cost of calling a mod at all
    mask           bans one token on every ForwardPass (a cloned, edited logits row)
    mask_inplace   the same edit made on the event's own row (no clone)
    ban_token(t)   `mask` for any token id (real vocabularies)
    ban_word       `mask` for the first token of BANNED_WORD in the served tokenizer (registrable over HTTP)
    backtrack_every(period, n, reinject)   erase n tokens and reinject fixed ones every `period` steps (on Added)
    rewind_every(period, n, reinject)      the same decided on ForwardPass (sglang_throughput: backtrack vs prefill)

Benches import them with `from bench_mods import noop, mask` (a bench runs as `python bench/<name>.py`,
which puts this folder on sys.path).
"""

from __future__ import annotations

from typing import Any

from quote_mod_sdk import Added, ForwardPass, mod

MASKED_TOKEN = 17  # any id inside the tiny model's vocabulary


@mod(max_backtrack=0)
def noop(event, actions):  # type: ignore[no-untyped-def]
    return None


@mod(max_backtrack=0)
def mask(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass):
        row = event.logits.clone()
        row[MASKED_TOKEN] = -1e9
        return actions.adjust_logits(row)
    return None


@mod(max_backtrack=0)
def mask_inplace(event, actions):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass):
        event.logits[MASKED_TOKEN] = -1e9
        return actions.adjust_logits(event.logits)
    return None


BANNED_WORD = " the"
_banned_ids: dict[int, int] = {}  # id(tokenizer) → its first token of BANNED_WORD


def banned_id(tokenizer: Any) -> int:
    """The token `ban_word` bans: peers in bench/peers.py ban the same id."""
    key = id(tokenizer)
    if key not in _banned_ids:
        _banned_ids[key] = tokenizer.encode(BANNED_WORD, add_special_tokens=False)[0]
    return _banned_ids[key]


@mod(max_backtrack=0)
def ban_word(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass):
        row = event.logits.clone()
        row[banned_id(tokenizer)] = -1e9
        return actions.adjust_logits(row)
    return None


def ban_token(token_id: int) -> Any:
    """A mod that bans `token_id` at every step, like a per-request logits processor in other engines."""

    @mod(max_backtrack=0)
    def ban(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass):
            row = event.logits.clone()
            row[token_id] = -1e9
            return actions.adjust_logits(row)
        return None

    return ban


def backtrack_every(period: int, n: int, reinject: list[int], *, first_step: int = 1) -> Any:
    """Every `period` decode steps (from `first_step`), erase `n` tokens and force `reinject` in their place."""

    @mod(max_backtrack=n)
    def backtrack(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Added) and not event.forced and event.step >= first_step and event.step % period == 0:
            return actions.backtrack(n, list(reinject))
        return None

    return backtrack


def rewind_every(period: int, n: int, reinject: list[int], *, first_step: int) -> Any:
    """Like `backtrack_every`, but decided on ForwardPass: the step after it recomputes the reinjected tokens."""

    @mod(max_backtrack=n)
    def rewind(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step >= first_step and event.step % period == 0:
            return actions.backtrack(n, list(reinject))
        return None

    return rewind
