"""The same guarantees on an NVIDIA GPU (skipped on CPU-only machines)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams, sample
from quote_serving.models.tiny import build_tiny_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-3), (torch.bfloat16, 0.1)])
def test_rollback_and_batching_match_full_forward_on_cuda(tokenizer: Any, dtype: torch.dtype, atol: float) -> None:
    model = build_tiny_model(vocab_size=len(tokenizer)).to("cuda", dtype)
    backend = EmbeddedBackend(model)
    assert backend.device.type == "cuda"
    seqs = {"a": list(range(3, 50)), "b": list(range(60, 65))}
    for sid, toks in seqs.items():
        backend.add_sequence(sid, toks)
    backend.forward(["a", "b"])
    backend.rollback("a", 6)
    backend.extend("a", [7, 8, 9])
    backend.extend("b", [10])
    seqs["a"] = [*seqs["a"][:-6], 7, 8, 9]
    seqs["b"] += [10]
    logits = backend.forward(["a", "b"])
    assert logits.device.type == "cuda" and logits.dtype == torch.float32
    with torch.no_grad():
        for row, toks in zip(logits, seqs.values()):
            expected = model(torch.tensor([toks], device="cuda")).logits[0, -1].float()
            assert torch.allclose(row, expected, atol=atol), (row - expected).abs().max()
    seeded = SamplingParams(seed=3, top_p=0.9, top_logprobs=2)
    result = sample(logits, [seeded, SamplingParams(temperature=0)], [seeded.new_generator(), None])
    assert len(result.tokens) == 2 and len(result.top_logprobs[0]) == 2
