"""Checking the logits row a mod hands back before it joins the batch's sampling.

The sampler draws every request of a step in one call, so one hostile row (strings, NaN, +inf,
the wrong width, an object whose methods run code) would fail or stall every co-batched request.
Each row is turned here into a plain float32 tensor of the vocabulary's width, or refused with
`BadRow`, which fails only the request that returned it. Only real `torch.Tensor` and
`numpy.ndarray` values are accepted, read through the base classes so that a subclass's overrides
never run outside the mod's time budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["BadRow", "checked_row"]


class BadRow(ValueError):
    """A mod's logits row that cannot be sampled from; the message says why."""


def checked_row(value: Any, width: int, device: torch.device) -> torch.Tensor:
    """`value` as a 1-D float32 tensor of `width` on `device`; `BadRow` if it is not a usable row."""
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            tensor = torch.Tensor.detach(value).as_subclass(torch.Tensor)
            if tensor.dtype.is_complex or tensor.dtype == torch.bool:
                raise BadRow(f"logits of dtype {tensor.dtype} are not real numbers")
            row = tensor.reshape(-1).to(device=device, dtype=torch.float32)
    elif isinstance(value, np.ndarray):
        array = np.ndarray.view(value, np.ndarray)
        if array.dtype.kind not in "fiu":
            raise BadRow(f"logits of dtype {array.dtype} are not real numbers")
        row = torch.from_numpy(np.array(array, dtype=np.float32, copy=True).reshape(-1)).to(device)
    else:
        raise BadRow(f"logits must be a torch tensor or numpy array, not {type(value).__name__}")
    if row.numel() != width:
        raise BadRow(f"a logits row of {row.numel()} values, expected {width}")
    if bool(torch.isnan(row).any()) or bool(torch.isposinf(row).any()):
        raise BadRow("logits hold NaN or +inf")
    if bool(torch.isneginf(row).all()):
        raise BadRow("every logit is -inf: no token can be sampled")
    return row
