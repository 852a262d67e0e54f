"""Load the model an engine serves: a Hugging Face id or local path, or the offline tiny model.

Names resolve through `models.catalog`: None or `tiny` is the tiny random Llama (built once, cached),
`smollm2` the packaged SmolLM2-135M-Instruct (converted once); anything else goes through
AutoModelForCausalLM / AutoTokenizer, offline-only when HF_HUB_OFFLINE is set. The device defaults to CUDA when present.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from quote_serving.models.catalog import resolve_model
from quote_serving.models.quantize import quantize_int8
from quote_serving.models.smollm2 import GgufMissingError

log = logging.getLogger(__name__)

INT8 = "int8"  # int8 Linear weights, per-row activations: rows stay isolated (CPU, x86): see models.quantize


class ModelLoadError(RuntimeError):
    """The model or tokenizer could not be loaded."""


@dataclass
class LoadedModel:
    """A model ready for an engine backend, with the tokenizer that matches it."""

    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any  # a transformers tokenizer
    model_id: str  # what clients send as `model`
    is_tiny: bool  # True for the offline tiny random model: its text is gibberish


def load_model(
    model: str | None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Load `model` (None or `tiny`: the offline tiny model) onto `device` (default: CUDA if available)."""
    target = torch.device(device) if device is not None else default_device()
    try:
        resolved = resolve_model(model)
    except GgufMissingError as exc:
        raise ModelLoadError(str(exc)) from exc
    if resolved.is_tiny:
        log.warning("serving the offline tiny model (random weights, gibberish output)")
    path = resolved.path
    int8 = dtype == INT8
    try:
        tokenizer = _load_tokenizer(path, resolved.offline)
        loaded = _load_weights(path, resolved.offline, target, torch.float32 if int8 else resolve_dtype(dtype, target))
        if int8:
            loaded = quantize_int8(loaded)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load model {path!r}: {exc}") from exc
    log.info("loaded %s on %s (%s)", resolved.model_id, target, INT8 if int8 else next(loaded.parameters()).dtype)
    return LoadedModel(model=loaded, tokenizer=tokenizer, model_id=resolved.model_id, is_tiny=resolved.is_tiny)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | str:
    """None → the checkpoint's dtype on GPU, float32 on CPU (half precision is slow on most CPUs)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return "auto" if device.type == "cuda" else torch.float32
    if dtype == "auto":
        return "auto"
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, float32, float16, bfloat16 or int8 (CPU)")
    return resolved


def _load_tokenizer(path: str, offline: bool) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=offline)


def _load_weights(path: str, offline: bool, device: torch.device, dtype: torch.dtype | str) -> Any:
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=offline, dtype=dtype)
    return model.to(device).eval()
