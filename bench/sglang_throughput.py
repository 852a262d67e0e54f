"""What Quote's SGLang plugin costs: vanilla SGLang vs SGLang + Quote with no / noop / mask mods.

Run on a GPU machine with the pinned sglang (deploy/gpu/README.md):

    python3 bench/sglang_throughput.py [--model DIR] [--new-tokens 256] [--json out.json]

With no --model, a random-weight Llama (hidden 1024, 8 layers, head size 128) is built and saved
locally: no download. Small models are the hard case for this ratio (Python per step weighs most
next to a short forward). Every configuration runs in its own process (one GPU engine per process),
decodes the same prompts greedily with eos ignored, and reports tokens/s at 1, 16 and 64
concurrent requests:

    vanilla            sglang.Engine as shipped (overlap scheduling on, Quote's plugin not loaded)
    vanilla, no overlap  the same with disable_overlap_schedule (what Quote's engines run with)
    quote, no mod / noop mod / mask mod (dense row replacement) / mask in place (zero-copy edit)

and, at a 2k-token context, one step that backtracks 8 tokens and reinjects 8 (requeue through the
radix cache: only the 8 are computed) against prefilling the 2k context from scratch.

  targets: quote noop ≥ 0.95× vanilla at each concurrency · backtrack 8 + reinject ≥ 10× cheaper
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

CONCURRENCY = (1, 16, 64)
PROMPT_TOKENS = 128
CONTEXT = 2048
CONFIGS = ["vanilla", "vanilla-no-overlap", "quote-none", "quote-noop", "quote-mask", "quote-mask-inplace"]


# ----- the model ---------------------------------------------------------------------------------
def bench_model_dir() -> Path:
    from quote_serving.models.tiny import TinyModelSpec, tiny_model_dir

    spec = TinyModelSpec(
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=8192,
    )
    return tiny_model_dir(spec)


def prompts(n: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(n)]


def server_args(model: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model_path": model,
        "dtype": args.dtype,
        "attention_backend": args.attention_backend,
        "mem_fraction_static": 0.6,
        "random_seed": 0,
    }


# ----- one configuration (runs in its own process) -----------------------------------------------
def run_vanilla(model: str, args: argparse.Namespace, overlap: bool) -> dict[str, Any]:
    os.environ["SGLANG_PLUGINS"] = "__none__"  # plain SGLang: Quote's entry point is not loaded
    import sglang

    engine = sglang.Engine(
        **server_args(model, args), skip_tokenizer_init=True, disable_overlap_schedule=not overlap, log_level="error"
    )
    vocab = int(json.loads((Path(model) / "config.json").read_text())["vocab_size"])
    sampling = {"max_new_tokens": args.new_tokens, "temperature": 0.0, "ignore_eos": True}
    try:
        engine.generate(input_ids=prompts(2, PROMPT_TOKENS, vocab, seed=99), sampling_params=sampling)  # warm-up
        result = {}
        for n in CONCURRENCY:
            batch = prompts(n, PROMPT_TOKENS, vocab, seed=n)
            started = time.perf_counter()
            outputs = engine.generate(input_ids=batch, sampling_params=sampling)
            elapsed = time.perf_counter() - started
            result[str(n)] = sum(len(o["output_ids"]) for o in outputs) / elapsed
        return {"tok_s": result}
    finally:
        engine.shutdown()


def quote_mods() -> dict[str, Any]:
    from bench_mods import mask, mask_inplace, noop  # the mods every bench measures (bench/bench_mods.py)

    return {"none": None, "noop": noop, "mask": mask, "mask-inplace": mask_inplace}


def submit_all(runtime: Any, batch: list[list[int]], mod_: Any, new_tokens: int, top_k: int) -> list[Any]:
    """Submit every prompt at once and wait; returns the finished handles."""
    from quote_mod_sdk.generation import GenerationParams
    from quote_serving.engine.sampling import SamplingParams
    from quote_serving.runtime.requests import GenerationRequest, RequestHandle

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        handles = [
            runtime.submit(
                RequestHandle(
                    GenerationRequest(
                        f"b-{uuid.uuid4().hex[:10]}",
                        p,
                        GenerationParams(max_tokens=new_tokens, top_logprobs=top_k),
                        SamplingParams(temperature=0.0),
                        mod_,
                    ),
                    loop,
                )
            )
            for p in batch
        ]
        await asyncio.gather(*(h.result() for h in handles))
        return handles

    return asyncio.run(main())


def quote_runtime(model: str, args: argparse.Namespace) -> Any:
    from quote_serving.engine.sglang.factory import load_tokenizer
    from quote_serving.engine.sglang.runtime import SGLangModRuntime
    from quote_serving.engine.sglang.settings import SGLangEngineSettings
    from quote_serving.runtime.mod_runtime import RuntimeSettings

    base = server_args(model, args)
    settings = SGLangEngineSettings(
        model_path=model,
        dtype=base["dtype"],
        attention_backend=base["attention_backend"],
        mem_fraction_static=base["mem_fraction_static"],
        random_seed=0,
    )
    runtime = SGLangModRuntime(
        settings, load_tokenizer(model), model_name="bench", settings=RuntimeSettings(max_batch=4096)
    )
    runtime.start()
    return runtime


def run_quote(model: str, args: argparse.Namespace, mod_name: str) -> dict[str, Any]:
    mod_ = quote_mods()[mod_name]
    runtime = quote_runtime(model, args)
    vocab = runtime.backend.vocab_size
    try:
        submit_all(runtime, prompts(2, PROMPT_TOKENS, vocab, seed=99), mod_, args.new_tokens, args.trace_top_k)
        result = {}
        for n in CONCURRENCY:
            batch = prompts(n, PROMPT_TOKENS, vocab, seed=n)
            started = time.perf_counter()
            handles = submit_all(runtime, batch, mod_, args.new_tokens, args.trace_top_k)
            elapsed = time.perf_counter() - started
            result[str(n)] = sum(len(h.snapshot.output) for h in handles) / elapsed
        out: dict[str, Any] = {"tok_s": result}
        if mod_name == "none":
            out["backtrack"] = backtrack_vs_prefill(runtime, vocab)
        return out
    finally:
        runtime.stop()


def backtrack_vs_prefill(runtime: Any, vocab: int) -> dict[str, float]:
    """Step time of 'backtrack 8 + reinject 8' at 2k context vs a cold 2k prefill (ms, medians)."""
    from bench_mods import rewind_every

    rewind = rewind_every(2, 8, [5, 6, 7, 8, 9, 10, 11, 12], first_step=10)

    (handle,) = submit_all(runtime, prompts(1, CONTEXT, vocab, seed=7), rewind, 40, 0)
    ends = handle.timings.step_end_ns
    # the step after each backtrack (odd steps ≥ 11) computes the 8 reinjected tokens after a requeue
    backtrack_ms = statistics.median((ends[s - 1] - ends[s - 2]) / 1e6 for s in range(11, len(ends), 2))
    decode_ms = statistics.median((ends[s - 1] - ends[s - 2]) / 1e6 for s in range(3, 10))
    cold = []
    for seed in range(5):  # a new random prompt each time: no radix hit
        (h,) = submit_all(runtime, prompts(1, CONTEXT, vocab, seed=1000 + seed), None, 1, 0)
        cold.append((h.timings.prefilled_ns - h.timings.admitted_ns) / 1e6)
    return {"backtrack_ms": backtrack_ms, "decode_ms": decode_ms, "prefill_ms": statistics.median(cold)}


def run_one(config: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    if config == "vanilla":
        return run_vanilla(model, args, overlap=True)
    if config == "vanilla-no-overlap":
        return run_vanilla(model, args, overlap=False)
    return run_quote(model, args, config.removeprefix("quote-"))


# ----- orchestration -----------------------------------------------------------------------------
def measure(config: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", config, "--model", model, "--new-tokens", str(args.new_tokens)]
    cmd += [
        "--dtype",
        args.dtype,
        "--attention-backend",
        args.attention_backend,
        "--trace-top-k",
        str(args.trace_top_k),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{config} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nDecode throughput, tokens/s ({args.new_tokens} new tokens per request, greedy, {args.dtype})")
    print(f"{'configuration':26}" + "".join(f"{f'{n} conc.':>14}" for n in CONCURRENCY))
    for config, result in results.items():
        print(f"{config:26}" + "".join(f"{result['tok_s'][str(n)]:14.1f}" for n in CONCURRENCY))
    vanilla = results["vanilla"]["tok_s"]
    print("\nRatios (target in brackets)")
    for config in ("quote-none", "quote-noop", "quote-mask", "quote-mask-inplace", "vanilla-no-overlap"):
        if config not in results:
            continue
        ratios = "  ".join(f"{results[config]['tok_s'][str(n)] / vanilla[str(n)]:5.3f}" for n in CONCURRENCY)
        target = "  [>= 0.95]" if config == "quote-noop" else ""
        print(f"  {config:22} / vanilla at {CONCURRENCY}: {ratios}{target}")
    bt = results["quote-none"]["backtrack"]
    print(
        f"\nBacktrack 8 + reinject 8 at {CONTEXT} context: {bt['backtrack_ms']:.2f} ms per step"
        f" (plain decode step {bt['decode_ms']:.2f} ms) vs prefill {bt['prefill_ms']:.2f} ms"
        f" -> {bt['prefill_ms'] / bt['backtrack_ms']:.1f}x cheaper  [>= 10x]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="local model directory (default: a random-weight Llama built here)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--attention-backend", default="triton")
    parser.add_argument("--trace-top-k", type=int, default=5, help="top-k kept in each trace (the server's default)")
    parser.add_argument("--configs", nargs="*", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)  # internal: one configuration
    args = parser.parse_args()
    model = args.model or str(bench_model_dir())
    if args.one:
        print(json.dumps(run_one(args.one, model, args)), flush=True)
        return
    results = {}
    for config in args.configs:
        print(f"measuring {config} ...", file=sys.stderr, flush=True)
        try:
            results[config] = measure(config, model, args)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # report the others; a cut-off run still says
            print(f"{config} FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"{config}: {json.dumps(results[config])}", file=sys.stderr, flush=True)
        if args.json:  # after each configuration, so a run stopped at its time limit keeps what it measured
            Path(args.json).write_text(json.dumps(results, indent=2))
    if {"vanilla", "quote-none", "quote-noop"} <= set(results):
        report(results, args)
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
