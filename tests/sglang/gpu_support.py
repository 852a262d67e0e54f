"""What the GPU tests share: a small real-architecture model built here, and SGLang engines on it.

The model is the offline tiny Llama at a shape every SGLang attention backend takes (head size 64),
random weights, saved with its tokenizer by `tiny_model_dir` (no download). Engines run in float32
with Triton attention so their logits can be compared with transformers' to 1e-4;
`QUOTE_SGLANG_TEST_DTYPE` / `QUOTE_SGLANG_TEST_ATTENTION` override both. SGLang's strict memory
checks are on: a KV slot leaked by a trim or a requeue raises in the scheduler loop, which fails
every request of the engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from quote_serving.engine.sglang.compat import unavailable_reason
from quote_serving.engine.sglang.settings import SGLangEngineSettings
from quote_serving.models.tiny import TinyModelSpec, tiny_model_dir

GPU_SPEC = TinyModelSpec(
    hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def skip_without_sglang() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def gpu_model_dir() -> Path:
    return tiny_model_dir(GPU_SPEC)


def engine_settings(path: Path, **overrides: Any) -> SGLangEngineSettings:
    values: dict[str, Any] = {
        "model_path": str(path),
        "dtype": os.environ.get("QUOTE_SGLANG_TEST_DTYPE", "float32"),
        "attention_backend": os.environ.get("QUOTE_SGLANG_TEST_ATTENTION", "triton"),
        "mem_fraction_static": 0.3,
        "random_seed": 0,
        "extra": {"max_total_tokens": 1 << 18, "cuda_graph_max_bs_decode": 64},
    }
    values.update(overrides)
    return SGLangEngineSettings(**values)


def build_sglang_parts(**overrides: Any) -> tuple[Any, Any, Any]:
    """(transformers model on CUDA in float32, tokenizer, an unstarted SGLangModRuntime)."""
    skip_without_sglang()
    os.environ.setdefault("SGLANG_ENABLE_STRICT_MEM_CHECK_DURING_IDLE", "1")
    from quote_serving.engine.sglang.runtime import SGLangModRuntime
    from quote_serving.models.loader import load_model
    from quote_serving.runtime.mod_runtime import RuntimeSettings

    if engine_settings(gpu_model_dir(), **overrides).dtype == "float32":
        allow_float32_rmsnorm()
    path = gpu_model_dir()
    loaded = load_model(str(path), device="cuda", dtype="float32")
    runtime = SGLangModRuntime(
        engine_settings(path, **overrides),
        loaded.tokenizer,
        model_name="quote-tiny-gpu",
        settings=RuntimeSettings(max_batch=256, mod_budget_ms=2000),
    )
    return loaded.model, loaded.tokenizer, runtime


def allow_float32_rmsnorm() -> None:
    """sglang-kernel 0.4.5's RMSNorm kernels take only fp16/bf16: float32 inputs take SGLang's own
    torch path (`forward_native`) instead, so the engine runs in float32 and its logits can be compared
    with transformers' to 1e-4. Applied before the engine builds its model (CustomOp binds the
    forward method when a layer is built)."""
    from sglang.srt.layers.layernorm import RMSNorm

    if getattr(RMSNorm, "_quote_float32_fallback", False):
        return
    cuda_forward = RMSNorm.forward_cuda

    def forward_cuda(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        if x.dtype == torch.float32:
            return self.forward_native(x, *args, **kwargs)
        return cuda_forward(self, x, *args, **kwargs)

    RMSNorm.forward_cuda = forward_cuda
    RMSNorm._quote_float32_fallback = True
