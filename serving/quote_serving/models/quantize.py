"""int8 weights for CPU decoding that keep every request numerically isolated from the others.

Why int8: decoding one token reads every weight once, so on a CPU it runs at memory bandwidth. A 135M
model in float32 reads 540 MB a step (the tied LM head alone 113 MB); int8 weights read a quarter.

Why not torch's dynamic int8 Linear: it quantizes the activations of a whole model call with ONE
scale, so a token's logits depend on what else is batched with it (another tenant's prompt carries
activation outliers that crush everyone's scale). A multi-tenant engine must not let tenant B's
request change tenant A's output.

How rows stay isolated. Weights: int8, one symmetric scale per output channel. Activations: each
row (token) gets its own scale `s = max|x| / 127` and is split into two int8 rows, `q1 = round(x/s)`
and `q2 = round((x/s - q1) * 254)`, so `x ≈ s * (q1 + q2/254)` (about 15 bits: SmolLM2's outlier
channels make one int8 level too coarse for the other channels). Both rows go through fbgemm's
int8 GEMM, whose int32 accumulation is exact in any order; a constant row holding -128 and 127 pins
fbgemm's own per-call quantization to scale 1, zero point 128, which is lossless on integers. So
`acc = float(sum(q * w_int8)) * w_scale` per element, whatever the batch, and the row's result
`(acc1 + acc2/254) * s` uses only correctly rounded elementwise operations: a row's output is
bit-identical whether it runs alone or next to any other rows (tests/real_model/test_int8_isolation.py).

Layers that read the same input are fused into one GEMM (q/k/v, gate/up): the group computes all
of them on its first member's call and hands the others their columns for the same input tensor.
x86 only (fbgemm); without VNNI, fbgemm's 16-bit pair sums can saturate, which costs accuracy but
not isolation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["Int8Linear", "quantize_int8"]

_FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # siblings that read the same input
_RESIDUAL = 254.0  # |x/s - q1| <= 0.5, so the second row spans [-127, 127]
_TINY = torch.finfo(torch.float32).tiny  # an all-zero row gets this scale: x/s stays 0, never NaN


class _Int8Gemm:
    """Packed int8 weights of one or more Linear layers (concatenated by output) and their last result."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        weight = torch.cat([layer.weight.detach().float() for layer in layers])
        scale = weight.abs().amax(1).clamp_min(_TINY) / 127
        q = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        zeros = torch.zeros(len(scale), dtype=torch.long)
        qweight = torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)
        self.packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.bias = _fused_bias(layers)
        self.pin = torch.zeros(1, weight.shape[1])
        self.pin[0, :2] = torch.tensor([-128.0, 127.0])  # fbgemm's per-call range becomes [-128, 127]: scale 1
        self.members = len(layers)
        # (input, its version, output, members yet to read it): held only until the last member reads it,
        # so a long prompt's activations are not kept alive between model calls.
        self._shared: tuple[torch.Tensor, int, torch.Tensor, int] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """All fused outputs for `x`: computed once per input tensor, shared by the group's members."""
        shared, version = self._shared, _version(x)
        if shared is not None and shared[0] is x and shared[1] == version:
            out, left = shared[2], shared[3] - 1
        else:
            out, left = self._compute(x), self.members - 1
        self._shared = (x, version, out, left) if left > 0 else None
        return out

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        m = rows.shape[0]
        scale = rows.abs().amax(-1, keepdim=True).div_(127).clamp_min_(_TINY)
        t = rows / scale
        q1 = torch.round(t)
        q2 = t.sub_(q1).mul_(_RESIDUAL).round_()
        acc: torch.Tensor = torch.ops.quantized.linear_dynamic(torch.cat((q1, q2, self.pin)), self.packed, False)
        out = acc[m : 2 * m].div_(_RESIDUAL).add_(acc[:m]).mul_(scale)
        if self.bias is not None:
            out = out.add_(self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def _version(x: torch.Tensor) -> int:
    """x's in-place write count; -1 for inference tensors, which keep none (the members of a group are
    called one after another on the same input, with nothing writing it in between)."""
    return -1 if x.is_inference() else x._version


def _fused_bias(layers: Sequence[nn.Linear]) -> torch.Tensor | None:
    """The layers' biases end to end (zeros for a layer without one); None when none has a bias."""
    if all(layer.bias is None for layer in layers):
        return None
    parts = [torch.zeros(lay.out_features) if lay.bias is None else lay.bias.detach().float() for lay in layers]
    return torch.cat(parts)


class Int8Linear(nn.Module):
    """Drop-in for an nn.Linear: its columns of a (possibly fused) int8 GEMM."""

    def __init__(self, gemm: _Int8Gemm, start: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.gemm = gemm
        self.start = start
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gemm(x)
        if out.shape[-1] == self.out_features:
            return out
        return out[..., self.start : self.start + self.out_features]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, columns from {self.start}"


def quantize_int8(model: Any) -> Any:
    """Replace the model's Linear layers (in place, the LM head too) with row-isolated int8 ones; x86 CPU only."""
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 weights are a CPU option; on GPU use float16 or bfloat16")
    engine = torch.backends.quantized.engine
    if engine not in ("x86", "fbgemm"):
        raise ValueError(f"int8 weights need fbgemm (x86 CPUs); this torch's quantized engine is {engine}")
    with warnings.catch_warnings(), torch.no_grad():
        # Quantized-tensor creation is deprecated in favour of torchao, which is not a dependency here.
        warnings.simplefilter("ignore")
        for parent in list(model.modules()):
            _quantize_children(parent)
    return model


def _quantize_children(parent: nn.Module) -> None:
    children = {name: child for name, child in parent.named_children() if type(child) is nn.Linear}
    groups = [list(names) for names in _FUSED if all(n in children for n in names)]
    groups = [g for g in groups if len({children[n].in_features for n in g}) == 1]
    grouped = {n for g in groups for n in g}
    groups += [[n] for n in children if n not in grouped]
    for names in groups:
        layers = [children[n] for n in names]
        gemm = _Int8Gemm(layers)
        start = 0
        for name, layer in zip(names, layers):
            setattr(parent, name, Int8Linear(gemm, start, layer.in_features, layer.out_features))
            start += layer.out_features
