"""What observability costs: decode throughput with tracing + metrics on vs off, in one run.

Run: .venv/bin/python bench/observability_overhead.py   (CPU; about a minute on 2 cores)

One runtime, one tiny-but-real Llama (random weights, hidden 256, 4 layers). "On" is what
`quote serve` runs with OTEL_EXPORTER_OTLP_ENDPOINT set: the metrics observer, and the span
observer feeding a BatchSpanProcessor whose OTLP/HTTP exporter posts protobuf to a sink in
another process (where a collector would be). "Off" is the same runtime with no observers.
Configurations alternate within each round so load from other processes hits both alike.

Printed: tokens/s (best and median of the rounds) and the on/off ratio; and, because a shared
machine makes wall-clock throughput noisy, two measures other processes barely disturb: this
process's CPU time per token on vs off (every thread: engine, span builder, exporter), and the
time observers spend on the engine thread per request. Nothing is asserted.

  target: on ≥ 0.95× off;  then bench/trace_shipping.py: traces shipped to PostgreSQL on vs off, ≥ 0.98×
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
import trace_shipping
from bench_mods import backtrack_every, noop
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from quote_mod_sdk.generation import GenerationParams
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.models.tiny import TinyModelSpec, build_tiny_model, build_tiny_tokenizer
from quote_serving.observability import MetricsObserver, QuoteMetrics, SpanObserver
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.observers import RuntimeObserver
from quote_serving.runtime.requests import GenerationRequest, RequestHandle

SPEC = TinyModelSpec(
    hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
)
NEW_TOKENS = 96
ROUNDS = 7
PROMPTS = [
    f"Request {i}: say something about the {w}."
    for i, w in enumerate(["cat", "road", "tree", "apple", "morning", "red", "token", "question"])
]


backtrack_every_8 = backtrack_every(8, 2, [5, 6])  # an intervention (a span event) every 8 steps


class _SinkHandler(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP export requests; counts them in a shared counter."""

    counter: Any = None

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.counter.get_lock():
            self.counter.value += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_sink(port: Any, counter: Any) -> None:
    _SinkHandler.counter = counter
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
    port.value = server.server_address[1]
    server.serve_forever()


class Sink:
    """An OTLP/HTTP endpoint in its own process, as a collector would be."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._port, self._count = context.Value("i", 0), context.Value("i", 0)
        self.process = context.Process(target=_serve_sink, args=(self._port, self._count), daemon=True)
        self.process.start()
        while not self._port.value:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self._port.value}/v1/traces"

    @property
    def requests(self) -> int:
        return int(self._count.value)


class Timed(RuntimeObserver):
    """Wraps an observer and adds up the time its hooks take on the calling (engine) thread."""

    def __init__(self, inner: RuntimeObserver) -> None:
        self.inner, self.seconds = inner, 0.0

    def _timed(self, name: str, *args: Any) -> None:
        started = time.perf_counter()
        getattr(self.inner, name)(*args)
        self.seconds += time.perf_counter() - started

    def on_submitted(self, handle: Any) -> None:
        self._timed("on_submitted", handle)

    def on_admitted(self, handle: Any) -> None:
        self._timed("on_admitted", handle)

    def on_first_token(self, handle: Any) -> None:
        self._timed("on_first_token", handle)

    def on_finished(self, handle: Any, trace: Any, error_kind: str | None) -> None:
        self._timed("on_finished", handle, trace, error_kind)


def run(runtime: ModRuntime, prompts: list[list[int]], mod_: Any) -> tuple[float, float]:
    """All prompts submitted at once; returns (tokens/s, this process's CPU seconds per token)."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        handles = [
            runtime.submit(RequestHandle(GenerationRequest(
                f"b-{uuid.uuid4().hex[:8]}", p, GenerationParams(max_tokens=NEW_TOKENS, top_logprobs=5),
                SamplingParams(temperature=0.0), mod_,
            ), loop))
            for p in prompts
        ]  # fmt: skip
        results = await asyncio.gather(*(h.result() for h in handles))
        return sum(len(r.output) for r in results)

    started, cpu = time.perf_counter(), time.process_time()
    tokens = asyncio.run(main())
    return tokens / (time.perf_counter() - started), (time.process_time() - cpu) / tokens


def main() -> None:
    torch.set_num_threads(2)
    tokenizer = build_tiny_tokenizer(SPEC)
    model = build_tiny_model(SPEC, vocab_size=len(tokenizer))
    prompts = [tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
    runtime = ModRuntime(EmbeddedBackend(model), tokenizer, model_name="bench", settings=RuntimeSettings(max_batch=16))
    sink = Sink()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink.url)))
    metrics = QuoteMetrics()
    spans = SpanObserver(provider, model="bench")
    observed = [Timed(MetricsObserver(metrics, model="bench")), Timed(spans)]
    runtime.start()
    results: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    try:
        run(runtime, prompts[:1], None)  # warm-up
        for _ in range(ROUNDS):
            for label, mod_ in [("noop mod", noop), ("backtrack/8 mod", backtrack_every_8)]:
                for n in (1, 8):
                    for config, observers in [("off", []), ("on", observed)]:
                        runtime.observers[:] = observers
                        results.setdefault((label, n, config), []).append(run(runtime, prompts[:n], mod_))
                        runtime.observers[:] = []
        assert spans.flush(30)
    finally:
        runtime.stop()
        spans.close()
        provider.shutdown()
        sink.process.terminate()

    labels = {"model": "bench", "tenant": "none", "finish_reason": "length"}
    requests = sum(
        metrics.registry.get_sample_value("quote_requests_total", {**labels, "mod": m}) or 0
        for m in ("noop", "backtrack_every_8")
    )
    print(f"\nDecode throughput, tokens/s ({NEW_TOKENS} new tokens per request, greedy, top-5 traced, CPU, "
          f"{torch.get_num_threads()} threads; median and best of {ROUNDS} alternating rounds)")  # fmt: skip
    print(f"{'workload':28} {'off best':>9} {'on best':>8} {'off median':>11} {'on median':>10} "
          f"{'best on/off':>12} {'CPU/token on/off':>17}")  # fmt: skip
    best_ratios, cpu_ratios = [], []
    for label in ("noop mod", "backtrack/8 mod"):
        for n in (1, 8):
            off = [tps for tps, _ in results[(label, n, "off")]]
            on = [tps for tps, _ in results[(label, n, "on")]]
            cpu_off = statistics.median(c for _, c in results[(label, n, "off")])
            cpu_on = statistics.median(c for _, c in results[(label, n, "on")])
            best_ratios.append(max(on) / max(off))
            cpu_ratios.append(cpu_on / cpu_off)
            name = f"{label}, {n} request{'s' if n > 1 else ''}"
            print(f"{name:28} {max(off):9.1f} {max(on):8.1f} {statistics.median(off):11.1f} "
                  f"{statistics.median(on):10.1f} {best_ratios[-1]:12.3f} {cpu_ratios[-1]:17.3f}")  # fmt: skip
    print(f"\nTracing + metrics on / off, best throughput: worst {min(best_ratios):.3f}, "
          f"mean {statistics.mean(best_ratios):.3f}  [target >= 0.95]")  # fmt: skip
    print(f"CPU per token on / off (median): worst {max(cpu_ratios):.3f}, mean {statistics.mean(cpu_ratios):.3f}"
          f"  -> throughput ratio if CPU-bound: {1 / max(cpu_ratios):.3f}")  # fmt: skip
    engine_s = sum(t.seconds for t in observed)
    decode_s = sum(
        NEW_TOKENS * n / tps for (_, n, config), runs in results.items() if config == "on" for tps, _ in runs
    )
    print(f"Observer time on the engine thread: {engine_s / requests * 1e6:.0f} us per request "
          f"({engine_s / decode_s * 100:.2f}% of the observed runs' wall time)")  # fmt: skip
    print(f"Proof it was on: {requests:.0f} requests counted, {sink.requests} OTLP export requests received, "
          f"{spans.dropped} spans dropped")  # fmt: skip
    trace_shipping.main()  # shipping traces to the PostgreSQL trace store, on vs off


if __name__ == "__main__":
    main()
