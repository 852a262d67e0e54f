"""What the mod runtime costs: HF generate() vs our engine with no mod / noop / mask / backtrack mods.

Run: .venv/bin/python bench/runtime_overhead.py   (CPU; a few minutes on 2 cores)

One run, one tiny-but-real Llama (random weights, hidden 256, 4 layers): every configuration
decodes the same number of tokens greedily (eos ignored) and the script prints tokens/s and the
ratios the targets are stated in. Nothing is asserted: speed is measured, not promised.

  targets: noop ≥ 0.97× no mod · ours ≥ 1.0× HF at 1 request · ≥ 3× HF at 8 (batching)
           backtrack 8 + reinject ≥ 20× cheaper than re-prefilling 2k tokens
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import torch
from bench_mods import backtrack_every, mask, noop

from quote_mod_sdk.generation import GenerationParams
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.models.tiny import TinyModelSpec, build_tiny_model, build_tiny_tokenizer
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle

SPEC = TinyModelSpec(
    hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
)
NEW_TOKENS = 96
PROMPTS = [
    f"Request {i}: say something about the {w} and the {v}."
    for i, (w, v) in enumerate(
        [
            ("cat", "dog"),
            ("road", "city"),
            ("tree", "house"),
            ("apple", "banana"),
            ("morning", "night"),
            ("red", "blue"),
            ("token", "model"),
            ("question", "answer"),
        ]
    )
]


backtrack_every_32 = backtrack_every(32, 8, [5, 6, 7, 8, 9, 10, 11, 12])


def hf_generate(model: Any, prompts: list[list[int]]) -> float:
    """HF generate() one request after another; returns tokens/s."""
    started = time.perf_counter()
    for ids in prompts:
        with torch.no_grad():
            model.generate(
                torch.tensor([ids]),
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=0,
            )
    return len(prompts) * NEW_TOKENS / (time.perf_counter() - started)


def hf_generate_batched(model: Any, prompts: list[list[int]]) -> float:
    """HF generate() on one left-padded batch (its own static batching); returns tokens/s."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    started = time.perf_counter()
    with torch.no_grad():
        model.generate(
            ids,
            attention_mask=attention,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return len(prompts) * NEW_TOKENS / (time.perf_counter() - started)


def ours(runtime: ModRuntime, prompts: list[list[int]], mod_: Any) -> float:
    """Our runtime with all prompts submitted at once; returns tokens/s."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        handles = [
            runtime.submit(
                RequestHandle(
                    GenerationRequest(
                        f"b-{uuid.uuid4().hex[:8]}",
                        p,
                        GenerationParams(max_tokens=NEW_TOKENS, top_logprobs=0),
                        SamplingParams(temperature=0.0),
                        mod_,
                    ),
                    loop,
                )
            )
            for p in prompts
        ]
        results = await asyncio.gather(*(h.result() for h in handles))
        return sum(len(r.output) for r in results)

    started = time.perf_counter()
    tokens = asyncio.run(main())
    return tokens / (time.perf_counter() - started)


def best_of(fn: Any, *args: Any, repeats: int = 3) -> float:
    return max(fn(*args) for _ in range(repeats))


def rollback_vs_prefill(backend: EmbeddedBackend, context: int = 2048, n: int = 8) -> tuple[float, float]:
    tokens = torch.randint(3, SPEC.vocab_size, (context,), generator=torch.Generator().manual_seed(0)).tolist()
    backend.add_sequence("long", tokens)
    backend.forward(["long"])

    def rollback() -> float:
        started = time.perf_counter()
        backend.rollback("long", n)
        backend.extend("long", tokens[-n:])
        backend.forward(["long"])
        return time.perf_counter() - started

    def reprefill() -> float:
        started = time.perf_counter()
        backend.add_sequence("again", tokens)
        backend.forward(["again"])
        elapsed = time.perf_counter() - started
        backend.remove_sequence("again")
        return elapsed

    rb = statistics.median(rollback() for _ in range(20))
    rp = statistics.median(reprefill() for _ in range(5))
    backend.remove_sequence("long")
    return rb, rp


def main() -> None:
    torch.set_num_threads(2)
    tokenizer = build_tiny_tokenizer(SPEC)
    model = build_tiny_model(SPEC, vocab_size=len(tokenizer))
    prompts = [tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
    runtime = ModRuntime(EmbeddedBackend(model), tokenizer, model_name="bench", settings=RuntimeSettings(max_batch=16))
    runtime.start()
    try:
        ours(runtime, prompts[:1], None)  # warm-up
        rows: dict[str, dict[int, float]] = {}
        rows["HF generate() sequential"] = {
            1: best_of(hf_generate, model, prompts[:1]),
            8: best_of(hf_generate, model, prompts, repeats=1),
        }
        rows["HF generate() batched"] = {
            1: rows["HF generate() sequential"][1],
            8: best_of(hf_generate_batched, model, prompts),
        }
        for label, mod_ in [
            ("ours, no mod", None),
            ("ours, noop mod", noop),
            ("ours, mask mod", mask),
            ("ours, backtrack/32", backtrack_every_32),
        ]:
            rows[label] = {n: best_of(ours, runtime, prompts[:n], mod_) for n in (1, 8)}
        rb, rp = rollback_vs_prefill(runtime.backend)  # type: ignore[arg-type]
    finally:
        runtime.stop()

    print(
        f"\nDecode throughput, tokens/s ({NEW_TOKENS} new tokens per request, greedy, CPU, {torch.get_num_threads()} threads)"
    )
    print(f"{'configuration':32} {'1 request':>12} {'8 concurrent':>14}")
    for label, by_n in rows.items():
        print(f"{label:32} {by_n[1]:12.1f} {by_n[8]:14.1f}")
    base, hf, hfb = rows["ours, no mod"], rows["HF generate() sequential"], rows["HF generate() batched"]
    print("\nRatios (target in brackets)")
    for n in (1, 8):
        print(f"  noop mod / no mod, {n} req:            {rows['ours, noop mod'][n] / base[n]:6.3f}  [>= 0.97]")
    print(f"  ours no mod / HF, 1 request:           {base[1] / hf[1]:6.2f}x  [>= 1.0]")
    print(f"  ours no mod / HF sequential, 8 conc.:  {base[8] / hf[8]:6.2f}x  [>= 3]")
    print(f"  ours no mod / HF batched, 8 conc.:     {base[8] / hfb[8]:6.2f}x  (HF's static batch, for reference)")
    print(f"  mask mod / no mod, 8 conc.:            {rows['ours, mask mod'][8] / base[8]:6.3f}")
    print(f"  backtrack/32 mod / no mod, 8 conc.:    {rows['ours, backtrack/32'][8] / base[8]:6.3f}")
    print(
        f"\nBacktrack 8 + reinject at 2k context: {rb * 1000:.2f} ms vs re-prefill {rp * 1000:.2f} ms"
        f" -> {rp / rb:.1f}x cheaper  [>= 20x]"
    )


if __name__ == "__main__":
    main()
