"""load_model: local paths and HF ids through Auto classes, None for the offline tiny model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.models.loader import ModelLoadError, load_model, resolve_dtype
from quote_serving.models.tiny import tiny_model_dir


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quote-cache")


def test_loads_a_local_model_directory(cache_dir: Path) -> None:
    path = str(tiny_model_dir(cache_dir=cache_dir))
    loaded = load_model(path, device="cpu")
    assert loaded.model_id == path and not loaded.is_tiny
    assert loaded.model.device == torch.device("cpu") and loaded.model.dtype == torch.float32
    assert not loaded.model.training
    backend = EmbeddedBackend(loaded.model)
    backend.add_sequence("s", loaded.tokenizer.encode("Say hi."))
    assert backend.forward(["s"]).shape == (1, len(loaded.tokenizer))


def test_none_loads_the_offline_tiny_model_and_says_so(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("QUOTE_CACHE_DIR", str(cache_dir))
    with caplog.at_level(logging.WARNING, logger="quote_serving.models.loader"):
        loaded = load_model(None, dtype="bfloat16")
    assert loaded.is_tiny and loaded.model.dtype == torch.bfloat16
    assert "tiny model" in caplog.text


def test_missing_model_offline_fails_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="could not load"):
        load_model("quote-test/definitely-not-a-model")


def test_dtype_resolution() -> None:
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype(None, torch.device("cuda")) == "auto"
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("float7", torch.device("cpu"))
