"""What the ingress needs of a model without its weights: tokenizer, vocabulary size, context window.

The ingress renders chat templates, counts prompt tokens and decodes streamed text, so it loads
the tokenizer and the config only; the weights live on engine replicas. That keeps the ingress
small and lets the engine deployment scale to zero without taking the API down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quote_serving.models.catalog import resolve_model

__all__ = ["ModelInfo", "load_model_info"]


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    tokenizer: Any
    vocab_size: int
    context_window: int


def load_model_info(model: str | None) -> ModelInfo:
    """Tokenizer and config of `model` (None: the offline tiny model), as `load_model` would see them."""
    from transformers import AutoConfig, AutoTokenizer

    resolved = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=resolved.offline)
    config = AutoConfig.from_pretrained(resolved.path, local_files_only=resolved.offline)
    window = int(getattr(config, "max_position_embeddings", 2048) or 2048)
    return ModelInfo(resolved.model_id, tokenizer, int(config.vocab_size), window)
