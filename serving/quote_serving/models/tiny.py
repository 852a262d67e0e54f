"""A deterministic tiny model and tokenizer, built offline.

Why: `quote serve` must work on a machine with no network and tests must never download weights.
The tokenizer is a real byte-level BPE trained here on a fixed corpus (so every UTF-8 string
encodes, multi-byte characters split across tokens like in production tokenizers), with a
ChatML chat template. The model is a real Llama architecture with seeded random weights: its text
is gibberish, but its KV cache, attention and logits behave exactly like a production model's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% if tools %}<|im_start|>system{{ '\\n' }}You may call these tools:"
    "{% for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{% endfor %}<|im_end|>{{ '\\n' }}{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}{{ '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message.get('tool_calls') %}{% for call in message['tool_calls'] %}"
    "{{ '\\n' }}<tool_call>{{ call['function'] | tojson }}</tool_call>{% endfor %}{% endif %}"
    "<|im_end|>{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)


_WORDS = (
    "the a an and or but if then else when while for to of in on at by with from into about as is are was "
    "were be been being have has had do does did say said hi bye hello yes no maybe ok okay sure I you he "
    "she it we they me him her us them my your his its our their this that these those can can't cannot "
    "help with that here there what which who whom whose why how where answer question user assistant "
    "system tool call search docs query token tokens model mod mods runtime let's restate clearly concise "
    "unsafe safe proceed confirm cancelled confirmed choose wrap tags think step first second third "
    "number one two three four five six seven eight nine ten red green blue apple banana cherry cat dog "
    "bird fish tree house car road city country world time day night morning evening good bad great small "
    "large big little new old right left before after again always never often sometimes because so very "
    "really just only also not information context prompt output input generate generation request "
    "response result value "
).split()

_EXTRA_TEXT = [
    "Say hi.",
    "Say bye.",
    "I can't help with that",
    "I can help you with that: ",
    "<question_to_user>",
    "</question_to_user>",
    "System: answer concisely\n",
    "Let's restate clearly:",
    " Choose: A or B ",
    "Proceed? (yes/no): ",
    "Ok!",
    "café naïve résumé — “quotes” 日本語 中文 Ελληνικά русский 😀 🚀",
    "0123456789",
    '{"query": "x"}',
    "Should I call a runtime tool?",
    "search_docs",
    "token injection",
]


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny model; the defaults load in well under a second on one CPU core."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    seed: int = 0

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _corpus(seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    lines = list(_EXTRA_TEXT)
    for _ in range(3000):
        n = rng.randint(3, 14)
        words = [rng.choice(_WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        lines.append(" ".join(words) + rng.choice([".", "?", "!", ",", ":", ""]))
    return lines


def build_tiny_tokenizer(spec: TinyModelSpec | None = None) -> Any:
    """Train a byte-level BPE tokenizer offline; returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = spec or TinyModelSpec()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(spec.seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers leaves its constructor untyped
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(spec: TinyModelSpec | None = None, *, vocab_size: int | None = None) -> Any:
    """A Llama-architecture causal LM with seeded random weights (no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = spec or TinyModelSpec()
    config = LlamaConfig(
        vocab_size=vocab_size or spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=None,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        # Wider than the usual 0.02 so greedy decoding wanders instead of repeating one token.
        initializer_range=0.1,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.train(False)  # inference mode (what .eval() does; typed, unlike .eval)
    return model


def tiny_model_dir(spec: TinyModelSpec | None = None, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Build (once) and cache the tiny model + tokenizer on disk; returns the directory."""
    spec = spec or TinyModelSpec()
    root = Path(cache_dir or os.environ.get("QUOTE_CACHE_DIR") or Path.home() / ".cache" / "quote")
    target = root / f"tiny-llama-{spec.digest()}"
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    tmp = root / f".tmp-{spec.digest()}-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(spec)
    model = build_tiny_model(spec, vocab_size=len(tokenizer))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target) if not target.exists() else None
    return target
