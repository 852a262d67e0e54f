"""Shipping traces to the trace store (the registry on PostgreSQL) on vs off, at 8 concurrent requests.

Part of bench/observability_overhead.py (run that); alone: .venv/bin/python bench/trace_shipping.py.
The registry runs in another process over a PostgreSQL cluster of its own (as in production, where
the store is another pod); "on" attaches a TraceShipper to the runtime's trace store, "off" does not.
Rounds alternate on/off so load from other processes hits both alike.  target: on ≥ 0.98× off
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
import uuid
from typing import Any

import httpx
from bench_mods import backtrack_every

from quote_mod_sdk.generation import GenerationParams
from quote_registry.devdb import create_database, postgres_cluster
from quote_registry.migrate import upgrade
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.models.tiny import TinyModelSpec, build_tiny_model, build_tiny_tokenizer
from quote_serving.observability.trace_shipper import TraceShipper
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle

ADMIN = "qk_admin0bench_" + "b" * 40
NEW_TOKENS, ROUNDS, CONCURRENT = 96, 7, 8
backtrack_every_8 = backtrack_every(8, 2, [5, 6])


def _serve_registry(url: str, port: Any) -> None:
    import socket

    import uvicorn

    from quote_registry.api.app import create_registry_app
    from quote_registry.settings import RegistrySettings

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port.value = sock.getsockname()[1]
    app = create_registry_app(RegistrySettings(database_url=url, bootstrap_admin_key=ADMIN))
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def _run(runtime: ModRuntime, prompts: list[list[int]]) -> float:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        handles = [
            runtime.submit(RequestHandle(GenerationRequest(
                f"t-{uuid.uuid4().hex[:12]}", p, GenerationParams(max_tokens=NEW_TOKENS, top_logprobs=5),
                SamplingParams(temperature=0.0), backtrack_every_8, tenant="bench",
            ), loop))
            for p in prompts
        ]  # fmt: skip
        return sum(len(r.output) for r in await asyncio.gather(*(h.result() for h in handles)))

    started = time.perf_counter()
    tokens = asyncio.run(main())
    return tokens / (time.perf_counter() - started)


def main() -> None:
    spec = TinyModelSpec(
        hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
    )
    tokenizer = build_tiny_tokenizer(spec)
    model = build_tiny_model(spec, vocab_size=len(tokenizer))
    prompts = [tokenizer.encode(f"Request {i}: say something.", add_special_tokens=False) for i in range(CONCURRENT)]
    runtime = ModRuntime(EmbeddedBackend(model), tokenizer, model_name="bench", settings=RuntimeSettings(max_batch=16))
    with postgres_cluster() as server:
        url = create_database(server)
        upgrade(url)
        context = multiprocessing.get_context("spawn")
        port = context.Value("i", 0)
        registry = context.Process(target=_serve_registry, args=(url, port), daemon=True)
        registry.start()
        while not port.value:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port.value}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.post(base + "/v1/tenants", json={"name": "bench"}, headers={"Authorization": f"Bearer {ADMIN}"})
        shipper = TraceShipper(base, ADMIN, tokenizer, replica="bench")
        runtime.start()
        results: dict[str, list[float]] = {"off": [], "on": []}
        try:
            _run(runtime, prompts[:1])
            for _ in range(ROUNDS):
                for config in ("off", "on"):
                    runtime.traces.sink = shipper.offer if config == "on" else None
                    results[config].append(_run(runtime, prompts))
                    runtime.traces.sink = None
            assert shipper.flush(60)
        finally:
            runtime.stop()
            shipper.close()
            registry.terminate()
    off, on = results["off"], results["on"]
    print(f"\nTrace shipping to PostgreSQL, backtrack/8 mod, {CONCURRENT} concurrent requests (tokens/s)")
    print(f"  off best {max(off):.1f} median {statistics.median(off):.1f}; on best {max(on):.1f} "
          f"median {statistics.median(on):.1f}")  # fmt: skip
    print(f"  on/off best {max(on) / max(off):.3f}, median {statistics.median(on) / statistics.median(off):.3f}"
          f"  [target >= 0.98]; shipped {shipper.shipped} traces, dropped {shipper.dropped}")  # fmt: skip


if __name__ == "__main__":
    main()
