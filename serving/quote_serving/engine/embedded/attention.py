"""Attention hook: plugs our per-sequence KV caches into a transformers model.

Data flow: transformers models compute q/k/v (with RoPE applied at the packed position ids) and
then call whatever function `config._attn_implementation` names in `AttentionInterface`, passing
through any extra keyword arguments given to `model(...)`. We register `quote_varlen` there; the
backend enables it only for the duration of its own forward (`varlen_attention_enabled`) and passes
the `PackedBatch` as the `quote_batch` kwarg. For every sequence segment the hook writes the new
K/V into that sequence's cache and attends from its queries to the cached prefix plus its own keys
(causal among the new tokens), so sequences never see each other.

Because our name has no entry in `AttentionMaskInterface`, transformers skips building its [T, T]
mask entirely (its documented path for custom attention backends): masks here are per segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from quote_serving.engine.embedded.batch import PackedBatch, Segment
from quote_serving.engine.port import EngineError

ATTENTION_NAME = "quote_varlen"
BATCH_KWARG = "quote_batch"


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # [1, heads, T, head_dim]
    key: torch.Tensor,  # [1, kv_heads, T, head_dim]
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,  # inference only: accepted for the interface, never applied
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Per-segment cache write + attention; returns [1, T, heads, head_dim] like transformers' own."""
    batch: PackedBatch | None = kwargs.pop(BATCH_KWARG, None)
    if batch is None:  # someone ran the model while our name was set: behave like plain SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    _check_supported(module, kwargs)
    layer: int = module.layer_idx  # type: ignore[assignment]  # set by transformers on every attention module; nn.Module types attributes as Tensor | Module
    window = kwargs.get("sliding_window")
    new_kv = torch.stack((key[0], value[0]))  # [2, kv_heads, T, head_dim]: one cache write per segment
    outputs = []
    for seg in batch.segments:
        rows = seg.rows
        seg.cache.write(layer, seg.past, new_kv[:, :, rows])
        keys, values = seg.cache.read(layer, seg.total)
        outputs.append(_segment_attention(query[:, :, rows], keys, values, seg, window, scaling))
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def _segment_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    seg: Segment,
    window: int | None,
    scaling: float | None,
) -> torch.Tensor:
    """SDPA of one segment's queries [1, H, n, d] over its cached + new keys [Hkv, total, d]."""
    mask, is_causal = seg.attention_mask(window, query.device)
    groups = query.shape[1] // keys.shape[0]
    gqa: dict[str, bool] = {}
    if groups > 1:
        # Masked GQA falls back to the slow math kernel on CUDA; repeating K/V there is cheaper.
        if mask is None or query.device.type == "cpu":
            gqa["enable_gqa"] = True
        else:
            keys, values = (t.repeat_interleave(groups, dim=0) for t in (keys, values))
    return F.scaled_dot_product_attention(
        query, keys[None], values[None], attn_mask=mask, is_causal=is_causal, scale=scaling, **gqa
    )


def _check_supported(module: torch.nn.Module, kwargs: dict[str, Any]) -> None:
    """Fail loudly on attention variants SDPA cannot express, rather than computing wrong logits."""
    if kwargs.get("softcap") is not None or hasattr(module, "sinks"):
        raise EngineError(
            f"{type(module).__name__} uses attention soft-capping or sinks, which the embedded "
            "backend does not implement; serve this model with another engine backend"
        )


@contextmanager
def varlen_attention_enabled(model: PreTrainedModel) -> Iterator[None]:
    """Route the model's attention through `varlen_attention` for one forward, then restore it.

    Switching only around our own calls keeps `model.generate()` and plain forwards on the same
    model object exact. Not thread-safe: the backend must own the model while it runs.
    """
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous


AttentionInterface.register(ATTENTION_NAME, varlen_attention)
