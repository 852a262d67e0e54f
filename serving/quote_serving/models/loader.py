"""Load the model an engine serves: a Hugging Face id or local path, or the offline tiny model.

`load_model(None)` builds (once, cached on disk) the tiny random Llama from `models.tiny`, so
`quote serve` and the tests work with no network; anything else goes through AutoModelForCausalLM /
AutoTokenizer, offline-only when HF_HUB_OFFLINE is set. The device defaults to CUDA when present.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from quote_serving.models.tiny import tiny_model_dir

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


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
    """Load `model` (None: the offline tiny model) onto `device` (default: CUDA if available)."""
    target = torch.device(device) if device is not None else default_device()
    is_tiny = model is None
    path = str(tiny_model_dir()) if model is None else model
    if is_tiny:
        log.warning("no model given: serving the offline tiny model (random weights, gibberish output)")
    offline = is_tiny or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    try:
        tokenizer = _load_tokenizer(path, offline)
        loaded = _load_weights(path, offline, target, resolve_dtype(dtype, target))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load model {path!r}: {exc}") from exc
    model_id = "quote-tiny" if is_tiny else model
    log.info("loaded %s on %s (%s)", model_id, target, next(loaded.parameters()).dtype)
    return LoadedModel(model=loaded, tokenizer=tokenizer, model_id=str(model_id), is_tiny=is_tiny)


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
    if not isinstance(resolved, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, float32, float16 or bfloat16")
    return resolved


def _load_tokenizer(path: str, offline: bool) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=offline)


def _load_weights(path: str, offline: bool, device: torch.device, dtype: torch.dtype | str) -> Any:
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=offline, dtype=dtype)
    return model.to(device).eval()
