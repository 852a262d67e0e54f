"""Shared fixtures: one real tiny Llama (random weights) and fresh backends over it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.models.tiny import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def model(tokenizer: Any) -> Any:
    return build_tiny_model(vocab_size=len(tokenizer))


@pytest.fixture
def make_backend(model: Any) -> Callable[..., EmbeddedBackend]:
    def make(**kwargs: Any) -> EmbeddedBackend:
        return EmbeddedBackend(model, **kwargs)

    return make


@pytest.fixture
def backend(make_backend: Callable[..., EmbeddedBackend]) -> EmbeddedBackend:
    return make_backend()


@pytest.fixture
def reference(model: Any) -> Callable[[Sequence[int]], torch.Tensor]:
    """Next-token logits from a plain Hugging Face forward over the whole sequence (no cache)."""

    @torch.no_grad()
    def logits(tokens: Sequence[int]) -> torch.Tensor:
        return model(torch.tensor([list(tokens)])).logits[0, -1].float()

    return logits


def token_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text))
