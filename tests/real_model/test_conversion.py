"""The converted default model is an ordinary model folder that any engine loads, with its chat setup."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from quote_serving.models.smollm2 import smollm2_dir

pytestmark = pytest.mark.real_model


def test_the_converted_folder_is_plain_float32_with_the_chat_stop_token() -> None:
    folder = smollm2_dir()
    assert smollm2_dir() == folder  # converted once, then reused
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # not a GGUF quantizer any more: vLLM and HF load it as is
    assert config["dtype"] == "float32" and config["num_hidden_layers"] == 30
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert tokenizer.eos_token == "<|im_end|>" and config["eos_token_id"] == tokenizer.eos_token_id
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (generation["temperature"], generation["top_p"]) == (0.2, 0.9)
