"""What isolating mods costs: decode throughput and per-step latency, mods inline vs in worker processes.

Run: .venv/bin/python bench/mod_isolation.py [--model tiny|smollm2] [--quick] [--tokens N] [--rounds N]
     (CPU; about two minutes on 2 cores for the tiny model, most of it starting 8 workers; --quick:
     under a minute, what tests/bench runs; --device cuda for a GPU)

One run, one model, two runtimes on the same weights, each built the way `quote serve` builds it:
"inline" (`--mod-isolation inline`: mods on the engine thread) and "isolated" (`--mod-isolation
process`: `embedded.isolate_mods` wires a `ModWorkerPool`, one confined worker per tenant, and
loads every mod from its serialized bundle). Configurations, each at 1 request and at 8 concurrent
requests of 8 different tenants (so 8 workers at once), greedy, exactly --tokens new tokens each:

    no mod          the engine alone (inline runtime, no mod)
    inline noop     bench_mods.noop on the engine thread
    isolated noop   the same mod in its tenant's worker: the cost of the process boundary
    inline mask     bench_mods.mask (clones and edits the logits row every step) on the engine thread
    isolated mask   the same in the worker: the row crosses the boundary both ways every step

Configurations alternate within each round so load from other processes hits them alike. Printed:
tokens/s (best and median of the rounds), the isolated/inline ratios (of the best runs, and the
median of each round's own ratio, which a noisy shared machine moves least), and per-step latency from
each request's `RequestTimings.step_end_ns` (p50, p99, and p99 added over "no mod" at the same
concurrency); `failed` counts requests that ended in an error (a mod over its budget, a dead worker),
whose tokens/s would mean nothing. Nothing is asserted: speed is measured, not promised. Targets,
printed next to the ratios:

  isolated noop ≥ 0.85× inline noop at 8 concurrent on the tiny model;  ≥ 0.95× on the real model (smollm2)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from bench_mods import mask, noop

from quote_mod_sdk import serialize_mod
from quote_mod_sdk.generation import GenerationParams
from quote_mod_sdk.mod import Mod
from quote_serving.embedded import isolate_mods
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.models.loader import LoadedModel, load_model
from quote_serving.runtime.mod_cpu import cpu_seconds as worker_cpu_seconds
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle
from quote_serving.settings import ServeSettings

THREADS = 2
CONCURRENCY = (1, 8)
BUDGET_MS = 5000.0  # generous: a busy shared machine must not turn a slow call into a failed request
PROMPTS = [
    f"Request {i}: say something about the {w}."
    for i, w in enumerate(["cat", "road", "tree", "apple", "morning", "red", "token", "question"])
]
CONFIGS = ["no mod", "inline noop", "isolated noop", "inline mask", "isolated mask"]
TARGETS = {"tiny": 0.85, "smollm2": 0.95}  # isolated noop / inline noop at 8 concurrent


@dataclass
class Samples:
    """Every run of one (configuration, concurrency): tokens/s per run, every step's duration."""

    tps: list[float] = field(default_factory=list)
    cpu_ms_per_token: list[float] = field(default_factory=list)  # this process + its mod workers
    steps_ms: list[float] = field(default_factory=list)
    failed: int = 0


@dataclass
class Bench:
    """The two runtimes and the mods each configuration runs."""

    inline: ModRuntime
    isolated: ModRuntime
    mods: dict[str, tuple[ModRuntime, Mod | None]]

    @classmethod
    def build(cls, loaded: LoadedModel) -> Bench:
        inline = _runtime(loaded)
        isolated = _runtime(loaded)
        settings = ServeSettings(mod_isolation="process", mod_budget_ms=BUDGET_MS, dev_mode=True)
        load = isolate_mods(isolated, loaded.tokenizer, settings)
        mods: dict[str, tuple[ModRuntime, Mod | None]] = {
            "no mod": (inline, None),
            "inline noop": (inline, noop),
            "isolated noop": (isolated, load(serialize_mod(noop))),
            "inline mask": (inline, mask),
            "isolated mask": (isolated, load(serialize_mod(mask))),
        }
        return cls(inline, isolated, mods)

    def start(self) -> None:
        self.inline.start()
        self.isolated.start()

    def stop(self) -> None:
        self.inline.stop()
        self.isolated.stop()
        if self.isolated.mod_pool is not None:
            self.isolated.mod_pool.close()


def _runtime(loaded: LoadedModel) -> ModRuntime:
    backend = EmbeddedBackend(loaded.model, max_sequences=16)
    settings = RuntimeSettings(max_batch=16, mod_budget_ms=BUDGET_MS)
    return ModRuntime(backend, loaded.tokenizer, model_name="bench", settings=settings)


def run(runtime: ModRuntime, prompts: list[list[int]], mod_: Mod | None, tokens: int, into: Samples) -> None:
    """All prompts submitted at once, request i of tenant i; adds tokens/s and step durations to `into`."""

    async def main() -> list[RequestHandle]:
        loop = asyncio.get_running_loop()
        handles = [
            runtime.submit(RequestHandle(GenerationRequest(
                f"iso-{uuid.uuid4().hex[:8]}", p, GenerationParams(max_tokens=tokens),
                SamplingParams(temperature=0.0), mod_, tenant=f"tenant-{i}",
            ), loop))
            for i, p in enumerate(prompts)
        ]  # fmt: skip
        await asyncio.gather(*(h.result() for h in handles))
        return handles

    started, cpu = time.perf_counter(), cpu_seconds()
    handles = asyncio.run(main())
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    snapshots = [h.snapshot for h in handles]
    into.failed += sum(1 for s in snapshots if s.error)
    generated = sum(len(s.output) for s in snapshots)
    into.tps.append(generated / elapsed)
    into.cpu_ms_per_token.append(cpu * 1000 / max(generated, 1))
    for h in handles:
        ends = h.timings.step_end_ns
        into.steps_ms.extend((b - a) / 1e6 for a, b in itertools.pairwise(ends))


def cpu_seconds() -> float:
    """CPU time of this process and of its live children (the mod workers): a measure that load from
    other processes on a shared machine barely moves, unlike wall-clock throughput."""
    total = time.process_time()
    for pid in _children():
        total += worker_cpu_seconds(pid) or 0.0  # None: a worker that just exited
    return total


def _children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def measure(bench: Bench, prompts: list[list[int]], tokens: int, rounds: int) -> dict[tuple[str, int], Samples]:
    results = {(c, n): Samples() for c in CONFIGS for n in CONCURRENCY}
    warm = Samples()
    for config in CONFIGS:  # every tenant's worker started and every mod loaded before timing
        runtime, mod_ = bench.mods[config]
        run(runtime, prompts[: max(CONCURRENCY)], mod_, 4, warm)
    if bench.isolated.mod_pool is not None:  # the spare that replaces the last one taken starts (~1 s of
        bench.isolated.mod_pool.wait_for_spare(120)  # CPU) before timing, not during the first rounds
    for _ in range(rounds):
        for n in CONCURRENCY:
            for config in CONFIGS:
                runtime, mod_ = bench.mods[config]
                run(runtime, prompts[:n], mod_, tokens, results[(config, n)])
    return results


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(results: dict[tuple[str, int], Samples], model: str, device: str, tokens: int, rounds: int) -> None:
    print(f"\nMod isolation: decode throughput and step latency ({model} on {device}, {tokens} new tokens per "
          f"request, greedy, {torch.get_num_threads()} CPU threads; best and median of {rounds} alternating rounds)")  # fmt: skip
    print(f"{'configuration':16} {'requests':>8} {'tok/s best':>11} {'tok/s median':>13} "
          f"{'step p50 ms':>12} {'step p99 ms':>12} {'p99 added ms':>13} {'CPU ms/tok':>11} {'failed':>7}")  # fmt: skip
    for n in CONCURRENCY:
        base_p99 = percentile(results[("no mod", n)].steps_ms, 99)
        for config in CONFIGS:
            s = results[(config, n)]
            p99 = percentile(s.steps_ms, 99)
            print(f"{config:16} {n:8d} {max(s.tps):11.1f} {statistics.median(s.tps):13.1f} "
                  f"{percentile(s.steps_ms, 50):12.3f} {p99:12.3f} {p99 - base_p99:13.3f} "
                  f"{statistics.median(s.cpu_ms_per_token):11.3f} {s.failed:7d}")  # fmt: skip
    target = TARGETS.get(model)
    print("\nRatios, best tokens/s (target in brackets)")
    for kind in ("noop", "mask"):
        for n in CONCURRENCY:
            iso, inl = results[(f"isolated {kind}", n)], results[(f"inline {kind}", n)]
            ratio = max(iso.tps) / max(inl.tps)
            paired = statistics.median(a / b for a, b in zip(iso.tps, inl.tps))  # same round, same load
            added = percentile(iso.steps_ms, 99) - percentile(inl.steps_ms, 99)
            cpu = statistics.median(iso.cpu_ms_per_token) / statistics.median(inl.cpu_ms_per_token)
            want = f"  [>= {target:.2f}]" if kind == "noop" and n == 8 and target is not None else ""
            print(f"  isolated/inline {kind}, {n} request{'s' if n > 1 else ' '}: {ratio:6.3f}{want:12}"
                  f"  per-round median {paired:5.3f}   CPU per token {cpu:5.2f}x"
                  f"   p99 step added by isolation: {added:7.3f} ms")  # fmt: skip
    print(f"  targets: isolated noop >= {TARGETS['tiny']}x inline at 8 concurrent on tiny, "
          f">= {TARGETS['smollm2']}x on smollm2")  # fmt: skip


def report_floor(results: dict[tuple[str, int], Samples], round_trip_us: float, model: str) -> None:
    """What the process boundary costs at least on this machine, next to what a step has to spare."""
    n = max(CONCURRENCY)
    inline_step_ms = n * 1000 / max(results[("inline noop", n)].tps)
    spare_ms = inline_step_ms * (1 / TARGETS.get(model, TARGETS["tiny"]) - 1)
    print(f"\nFloor: a bare pipe round trip between two Python processes here takes {round_trip_us:.1f} µs "
          f"(median of {PING_ROUNDS}); an isolated step whose mod answers noop makes 1 round trip per request "
          f"(ForwardPass, Sampled and Added in one frame). Inline noop at {n} concurrent steps every "
          f"{inline_step_ms:.2f} ms; the target leaves {spare_ms:.2f} ms per step, {spare_ms * 1000 / n:.0f} µs "
          f"per round trip "
          f"on {os.cpu_count()} CPUs shared by the engine and {n} workers.")  # fmt: skip


PING_ROUNDS = 2000
_ECHO = "import os\nwhile True:\n    d = os.read(0, 64)\n    if not d: break\n    os.write(1, d)\n"


def pipe_round_trip_us() -> float:
    """The median round trip of 64 bytes to an echoing Python process and back, in µs."""
    child = subprocess.Popen([sys.executable, "-I", "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    to_child, from_child = child.stdin.fileno(), child.stdout.fileno()
    times = []
    for _ in range(PING_ROUNDS):
        started = time.perf_counter()
        os.write(to_child, b"x" * 64)
        os.read(from_child, 64)
        times.append((time.perf_counter() - started) * 1e6)
    child.stdin.close()
    child.wait()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (default), smollm2, or a Hugging Face id / path")
    parser.add_argument("--quick", action="store_true", help="one short round: checks the bench runs (< 1 min)")
    parser.add_argument("--tokens", type=int, default=None, help="new tokens per request (default 96; quick 12)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 7; quick 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the model runs")
    args = parser.parse_args()
    tokens = args.tokens or (12 if args.quick else 96)
    rounds = args.rounds or (1 if args.quick else 7)
    torch.set_num_threads(THREADS)
    loaded = load_model(args.model, device=args.device)
    prompts = [loaded.tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
    bench = Bench.build(loaded)
    bench.start()
    try:
        results = measure(bench, prompts, tokens, rounds)
    finally:
        bench.stop()
    report(results, args.model, args.device, tokens, rounds)
    report_floor(results, pipe_round_trip_us(), args.model)


if __name__ == "__main__":
    main()
