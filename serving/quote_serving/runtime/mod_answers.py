"""The engine's half of a mod call's content: an event as a frame header, an answer as an action.

    ModEvent ─► event_header() ─► {"kind", "request_id", "step", …} (+ the row, via `RowSlots`)
    answer header (+ row copied out of the OUT slot, or a piped blob) ─► decode_action() ─► Action

Answers come from a worker that runs untrusted code, so nothing in them is trusted: every action
is rebuilt through the SDK's `ActionBuilder` and `validate_action` (the validity table), and a
returned row is taken only at the size the engine expects (`returned_row`); its values are
checked later by `checked_row` like any other row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quote_mod_sdk import actions as act
from quote_mod_sdk import events as ev
from quote_mod_sdk.errors import InvalidActionError
from quote_serving.runtime.mod_slots import RowSlots

__all__ = ["decode_action", "event_header", "returned_row", "row_bytes", "row_length"]


def event_header(event: ev.ModEvent) -> dict[str, Any]:
    """Every field of `event` but a ForwardPass row (that travels through shared memory)."""
    base: dict[str, Any] = {"kind": type(event).__name__, "request_id": event.request_id, "step": event.step}
    if isinstance(event, ev.Prefilled):
        info = event.context_info
        base.update(
            max_steps=event.max_steps,
            prefilled_text=event.prefilled_text,
            tokens=list(info.tokens) if info is not None else [],
            prompt_len=info.prompt_len if info is not None else 0,
            tokens_so_far_len=event.tokens_so_far_len,
        )
    elif isinstance(event, ev.Sampled):
        base["sampled_token"] = event.sampled_token
    elif isinstance(event, ev.Added):
        base.update(
            added_tokens=list(event.added_tokens), forced=event.forced, tokens_so_far_len=event.tokens_so_far_len
        )
    elif isinstance(event, ev.Finished):
        base.update(reason=event.reason, output=list(event.output_tokens))
    return base


def row_length(row: Any) -> int:
    """How many floats a ForwardPass row holds (its last dimension for a 1-D row)."""
    shape = getattr(row, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) == 1 else math.prod(int(d) for d in shape)
    return int(np.asarray(row).size)


def row_bytes(row: Any) -> bytes:
    """A row as float32 bytes, for rows too large for the slot (piped instead)."""
    if hasattr(row, "detach"):
        import torch

        with torch._C.DisableTorchFunctionSubclass():
            array = row.detach().float().cpu().reshape(-1).numpy()
    else:
        array = np.asarray(row, dtype=np.float32).reshape(-1)
    return np.ascontiguousarray(array, dtype=np.float32).tobytes()


def returned_row(
    answer: dict[str, Any], blob: bytes, slots: RowSlots, expected: int, pair: int | None = 0
) -> np.ndarray | None:
    """The row an adjust_logits answer returned, copied once; None when it returned none.

    The worker's claimed length is compared, never used to size a read: OUTₚ (`pair`, the call's
    own; None when its row was piped) is read at `expected`.
    """
    where = answer.get("logits")
    if not where:
        return None
    if where == "slot":
        n = answer.get("n")
        if not isinstance(n, int) or isinstance(n, bool):
            raise InvalidActionError("adjust_logits answered a row without a length")
        if n != expected or not slots.fits(expected) or pair is None:
            raise InvalidActionError(f"adjust_logits returned a row of size {n}, expected {expected}")
        return slots.take_output(expected, pair)
    if len(blob) % 4:
        raise InvalidActionError("adjust_logits returned a row that is not float32")
    if len(blob) // 4 != expected:
        raise InvalidActionError(f"adjust_logits returned a row of size {len(blob) // 4}, expected {expected}")
    return np.frombuffer(blob, dtype=np.float32).copy()


def decode_action(event: ev.ModEvent, answer: dict[str, Any], logits: np.ndarray | None) -> act.Action:
    """The worker's answer as an action, rebuilt and re-validated as if the mod were untrusted."""
    name = answer.get("action")
    if name == "noop":
        return act.validate_action(event, act.NOOP)
    builder = act.ActionBuilder(event)
    action: act.Action
    try:
        if name == "adjust_prefill":
            action = builder.adjust_prefill(answer["tokens"], answer.get("max_steps"))
        elif name == "adjust_logits":
            temp = answer.get("token_temp")
            if logits is None and temp is None:
                raise InvalidActionError("adjust_logits needs logits, token_temp, or both")
            action = act.AdjustLogits(logits, None) if temp is None else builder.adjust_logits(logits, temp)
        elif name == "force_tokens":
            action = builder.force_tokens(answer["tokens"])
        elif name == "backtrack":
            action = builder.backtrack(answer["n"], answer.get("reinject"))
        elif name == "force_output":
            action = builder.force_output(answer["tokens"])
        elif name == "tool_calls":
            action = builder.tool_calls(answer["calls"])
        elif name == "emit_error":
            action = builder.emit_error(str(answer["message"])[:2000])
        else:
            raise InvalidActionError(f"the worker answered an unknown action {name!r:.40}")
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidActionError(
            f"the worker answered a malformed {name!r:.40} action ({type(exc).__name__})"
        ) from None
    return act.validate_action(event, action)
