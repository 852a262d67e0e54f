"""int8 weights for CPU decoding: every Linear (the LM head too) as a dynamically quantized int8 matmul.

Why: decoding one token reads every weight once, so on a CPU it runs at memory bandwidth. A 135M model
in float32 reads 540 MB a step (the tied LM head alone 113 MB, ~11 ms on two cores); int8 weights read
a quarter of that through fbgemm's VNNI kernels, about 3x the tokens/s. Weights are quantized per
output channel (symmetric); activations are quantized per model call with ONE scale for the whole
packed batch (torch's dynamic int8 Linear). Consequences, measured on SmolLM2: a token's logits depend
on what else is in the call (a prompt's first token carries activation outliers that crush everyone's
scale; cached decode vs a from-scratch recompute can pick another token), so requests batched
together are not numerically isolated and rollback is not exact. Opt-in only (`--dtype int8`); float32
stays the default and every exactness test uses it; bfloat16 keeps rows independent.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["quantize_int8"]


def quantize_int8(model: Any) -> Any:
    """Replace the model's Linear layers (in place) with int8 dynamic-quantized ones; CPU only."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 weights are a CPU option; on GPU use float16 or bfloat16")
    with warnings.catch_warnings():
        # torch.ao eager quantization is deprecated in favour of torchao, which is not a dependency here.
        warnings.simplefilter("ignore")
        layers = {torch.nn.Linear: per_channel_dynamic_qconfig}
        # (type: ignore below: torch leaves quantize_dynamic untyped)
        quantize_dynamic(model, layers, dtype=torch.qint8, inplace=True)  # type: ignore[no-untyped-call]
    return model
