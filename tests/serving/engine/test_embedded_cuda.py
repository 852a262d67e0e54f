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


def test_isolated_mods_see_and_edit_cuda_rows_like_inline_ones(tokenizer: Any) -> None:
    """Issue 13 on a GPU: a row on the GPU crosses to the mod worker (one device-to-host copy into
    its slot) and the edited row comes back; the text equals the same mod run inline."""
    import asyncio
    import textwrap

    from quote_mod_sdk.generation import GenerationParams
    from quote_mod_sdk.serialize import load_mod
    from quote_serving.runtime.isolation import start_isolation
    from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
    from quote_serving.runtime.requests import GenerationRequest, RequestHandle

    source = textwrap.dedent("""
        from quote_mod_sdk import mod, ForwardPass, Added

        @mod
        def ban_low(event, actions):
            if isinstance(event, ForwardPass):
                row = event.logits.clone()
                row[:300] = -1e9  # never a token below 300
                return actions.adjust_logits(row)
            if isinstance(event, Added) and event.step == 3:
                return actions.force_tokens([5])
    """)
    bundle = {"language": "python", "module": "ban_low", "entrypoint": "ban_low", "source": source, "name": "ban_low"}
    model = build_tiny_model(vocab_size=len(tokenizer)).to("cuda")

    def run(isolated: bool) -> list[tuple[int, ...]]:
        runtime = ModRuntime(EmbeddedBackend(model), tokenizer, model_name="t", settings=RuntimeSettings())
        isolation = start_isolation(
            "process" if isolated else "inline", dev_mode=True, tokenizer=tokenizer, budget_ms=5000, weak_ok=True
        )
        isolation.attach(runtime)
        mod_ = isolation.loader(bundle) if isolated else load_mod(bundle)
        runtime.start()

        async def main() -> list[tuple[int, ...]]:
            loop = asyncio.get_running_loop()
            handles = [
                runtime.submit(RequestHandle(GenerationRequest(
                    f"cuda-{i}", tokenizer.encode(f"prompt {i}"), GenerationParams(max_tokens=12),
                    SamplingParams(temperature=0.0), mod_, tenant=f"tenant-{i}",
                ), loop))
                for i in range(4)
            ]  # fmt: skip
            await asyncio.gather(*(h.result() for h in handles))
            return [h.snapshot.output for h in handles]

        try:
            return asyncio.run(main())
        finally:
            runtime.stop()
            isolation.close()

    inline, isolated = run(False), run(True)
    assert isolated == inline
    for output in isolated:
        assert len(output) == 12 and output[3] == 5  # forced after the step-3 Added
        assert all(t >= 300 for i, t in enumerate(output) if i != 3)
