"""Build an `SGLangModRuntime` for a model: what `quote serve` and the Ray Serve engine call.

One call gives a started-or-startable runtime with the model's own tokenizer. With no model the
offline tiny Llama (random weights) is used, with SGLang's Triton attention, which takes its
small head size. Nothing here imports sglang; the runtime's engine thread does, when it starts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from quote_serving.engine.sglang.runtime import SGLangModRuntime
from quote_serving.engine.sglang.settings import SGLangEngineSettings
from quote_serving.runtime.mod_runtime import RuntimeSettings
from quote_serving.runtime.observers import RuntimeObserver
from quote_serving.runtime.traces import TraceStore

__all__ = ["build_runtime", "load_tokenizer"]

_TRUE = {"1", "true", "yes", "on"}


def load_tokenizer(path: str) -> Any:
    """The model's Hugging Face tokenizer (offline when HF_HUB_OFFLINE is set)."""
    from transformers import AutoTokenizer

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or os.path.isdir(path)
    return AutoTokenizer.from_pretrained(path, local_files_only=offline)


def build_runtime(
    model: str | None,
    *,
    model_name: str | None = None,
    engine: SGLangEngineSettings | None = None,
    runtime: RuntimeSettings | None = None,
    traces: TraceStore | None = None,
    observers: Sequence[RuntimeObserver] = (),
) -> SGLangModRuntime:
    """An SGLang-backed mod runtime for `model` (a local path or hub id; None: the tiny model).

    `engine.model_path` is filled in from `model`; call `start()` on the result (it blocks until
    SGLang is ready and raises `SGLangStartError` with the cause if it cannot start).
    """
    path, name = _resolve(model)
    settings = dataclasses.replace(engine, model_path=path) if engine else SGLangEngineSettings(model_path=path)
    if model is None and settings.attention_backend is None:
        settings = dataclasses.replace(settings, attention_backend="triton")
    return SGLangModRuntime(
        settings,
        load_tokenizer(path),
        model_name=model_name or name,
        settings=runtime,
        traces=traces,
        observers=observers,
    )


def _resolve(model: str | None) -> tuple[str, str]:
    if model is not None:
        return model, model
    from quote_serving.models.tiny import tiny_model_dir

    return str(tiny_model_dir()), "quote-tiny"
