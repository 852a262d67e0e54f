"""Scale-out on Ray Serve: throughput with 1 vs 2 engine replicas, and what the Ray hop costs a request.

Run: .venv/bin/python bench/ray_scaling.py   (CPU; about 5 minutes on 2 cores)

One local Ray with 2 CPUs; every engine replica reserves 1 CPU and runs torch with 1 thread, so two
replicas use both cores. The model is a tiny-but-real Llama (random weights, hidden 256, 4 layers),
saved locally and loaded by path. Measured in the same run:

  * throughput: 8 clients, each sending non-streaming chat requests (up to 256 new tokens) back to
    back through the Serve HTTP proxy → ingress → engine replicas; completion tokens/s with 1, then 2
    replicas (the proxy, the ingress and this client share the 2 CPUs), for a chat prompt (~150
    tokens) and a long-context prompt (~700 tokens);
  * the two ceilings no replica count can beat, measured just before:
      machine: two single-threaded torch processes vs one (~2x on 2 idle cores, less when shared);
      engine:  two batches of 4 vs one batch of 8, in-process (continuous batching makes a batch of 8
               nearly as cheap per step as a batch of 4, so splitting 8 requests over 2 replicas
               gains less than 2x even with free cores and a free hop);
  * per-request cost of the hop: a 1-token request, sequentially, in-process (ModRuntime.submit),
    through one DeploymentHandle call to the engine deployment, over HTTP to an embedded
    `quote serve` process, and over HTTP through Ray Serve.

Nothing is asserted: speed is measured, not promised.  target: 2 replicas / 1 replica >= 1.7x at 8 concurrent
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import torch

from quote_mod_sdk.generation import GenerationParams
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.models.loader import load_model
from quote_serving.models.tiny import TinyModelSpec, tiny_model_dir
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle

SPEC = TinyModelSpec(
    hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
)
NAME = "bench"
CLIENTS = 8
REQUESTS_PER_CLIENT = 3
NEW_TOKENS = 256
LATENCY_SAMPLES = 30
_SENTENCE = "You answer questions about the road, the city and the country in clear, concise words. "
WORKLOADS = {  # label → chat messages
    "chat (~150-token prompt)": [
        {"role": "system", "content": _SENTENCE * 8},
        {"role": "user", "content": "Say something about the city."},
    ],
    "long context (~700-token prompt)": [
        {"role": "system", "content": _SENTENCE * 40},
        {"role": "user", "content": "Say something about the city."},
    ],
}
CHAT = next(iter(WORKLOADS.values()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- ceilings -------------------------------------------------------------------------------------
def _matmuls(seconds: float, done: Any) -> None:
    torch.set_num_threads(1)
    a, count, started = torch.randn(256, 256), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            a @ a
        count += 50
    done.put(count)


def machine_ceiling(seconds: float = 4.0) -> float:
    """Work two single-threaded processes get done, over one. Forks: call it before Ray starts threads."""
    import multiprocessing

    work = {}
    for processes in (1, 2):
        done: Any = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=_matmuls, args=(seconds, done)) for _ in range(processes)]
        for worker in workers:
            worker.start()
        work[processes] = sum(done.get() for _ in workers)
        for worker in workers:
            worker.join()
    return work[2] / work[1]


def _generate(runtime: ModRuntime, prompt: list[int], requests: int, max_tokens: int) -> tuple[int, float]:
    """Submit `requests` at once in-process; (tokens generated, seconds)."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        params, sampling = GenerationParams(max_tokens=max_tokens), SamplingParams(temperature=0)
        handles = [
            runtime.submit(RequestHandle(GenerationRequest(uuid.uuid4().hex, list(prompt), params, sampling), loop))
            for _ in range(requests)
        ]
        return sum(len(result.output) for result in await asyncio.gather(*(h.result() for h in handles)))

    started = time.perf_counter()
    tokens = asyncio.run(main())
    return tokens, time.perf_counter() - started


def engine_ceiling(runtime: ModRuntime, prompt: list[int]) -> float:
    """Tokens/s of two batches of 4 (ideal replicas) over one batch of 8, in this process, 1 thread."""

    def rate(batch: int) -> float:
        return max(tokens / seconds for tokens, seconds in (_generate(runtime, prompt, batch, 128) for _ in range(2)))

    return 2 * rate(4) / rate(8)


# -- latency --------------------------------------------------------------------------------------
def chat(client: httpx.Client, url: str, messages: list[dict[str, str]], max_tokens: int) -> int:
    body = {"model": NAME, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    response = client.post(url, json=body, timeout=300)
    response.raise_for_status()
    return int(response.json()["usage"]["completion_tokens"])


def http_latency(base: str) -> float:
    with httpx.Client() as client:
        url = base + "/v1/chat/completions"
        for _ in range(3):
            chat(client, url, CHAT, 1)
        samples = []
        for _ in range(LATENCY_SAMPLES):
            started = time.perf_counter()
            chat(client, url, CHAT, 1)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def in_process_latency(runtime: ModRuntime, prompt: list[int]) -> float:
    _generate(runtime, prompt, 1, 1)
    return statistics.median(_generate(runtime, prompt, 1, 1)[1] for _ in range(LATENCY_SAMPLES))


def handle_latency(prompt: list[int]) -> float:
    """One DeploymentHandle call (streamed, as the ingress makes it) from this driver to an engine replica."""
    from ray import serve

    from quote_serving.ray_serve.wire import EngineRequest

    engine = serve.get_deployment_handle("QuoteEngine", app_name=NAME).options(stream=True)
    params, sampling = GenerationParams(max_tokens=1), SamplingParams(temperature=0)

    def one() -> float:
        request = EngineRequest(uuid.uuid4().hex, list(prompt), params, sampling, None, None, None, False)
        started = time.perf_counter()
        for _ in engine.generate.remote(request):
            pass
        return time.perf_counter() - started

    for _ in range(3):
        one()
    return statistics.median(one() for _ in range(LATENCY_SAMPLES))


def embedded_http_latency(model_dir: Path) -> float:
    port = free_port()
    serve_args = ["serve", "--model", str(model_dir), "--served-model-name", NAME, "--port", str(port)]
    cmd = [sys.executable, "-m", "quote_cli", *serve_args, "--log-level", "warning"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        return http_latency(base)
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- throughput through Ray Serve -----------------------------------------------------------------
def cpu_seconds() -> dict[str, float]:
    """CPU time so far of the engine replicas, the rest of Ray Serve, and this client process."""
    import psutil

    used = {"engines": 0.0, "proxy+ingress+controller": 0.0, "client": 0.0}
    for process in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        cmdline, times = " ".join(process.info["cmdline"] or []), process.info["cpu_times"]
        if times is None:
            continue
        if "QuoteEngine" in cmdline:
            used["engines"] += times.user + times.system
        elif "ray::" in cmdline:
            used["proxy+ingress+controller"] += times.user + times.system
        elif process.info["pid"] == os.getpid():
            used["client"] += times.user + times.system
    return used


def throughput(base: str, messages: list[dict[str, str]]) -> tuple[float, dict[str, float]]:
    """Completion tokens/s with CLIENTS clients sending requests back to back, and the CPU shares used."""
    url = base + "/v1/chat/completions"

    def client_loop(_: int) -> int:
        with httpx.Client() as client:
            return sum(chat(client, url, messages, NEW_TOKENS) for _ in range(REQUESTS_PER_CLIENT))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client_loop, range(CLIENTS)))  # warm-up: every replica has seen traffic
        before, started = cpu_seconds(), time.perf_counter()
        tokens = sum(pool.map(client_loop, range(CLIENTS)))
        elapsed, after = time.perf_counter() - started, cpu_seconds()
    return tokens / elapsed, {k: (after[k] - before[k]) / elapsed for k in after}


def deploy(replicas: int, model_dir: Path) -> None:
    from ray import serve

    from quote_serving.ray_serve import QuoteAppArgs, build_app

    args = QuoteAppArgs(
        model=str(model_dir), served_model_name=NAME, min_replicas=replicas, max_replicas=replicas, num_cpus=1
    )
    serve.run(build_app(args), name=NAME, route_prefix="/")


def main() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # Ray workers inherit it: the model is a local directory
    # Ray runs its workers at nice 15. On a machine shared with other work that starves the replicas
    # unevenly (two replicas need both cores, one needs one); at 0 both runs compete on equal terms.
    os.environ.setdefault("RAY_worker_niceness", "0")
    torch.set_num_threads(1)
    model_dir = tiny_model_dir(SPEC)
    loaded = load_model(str(model_dir))
    prompts = {
        label: loaded.tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=False)
        for label, m in WORKLOADS.items()
    }
    runtime = ModRuntime(EmbeddedBackend(loaded.model), loaded.tokenizer, model_name=NAME, settings=RuntimeSettings())
    runtime.start()
    try:
        latency = {"in-process (ModRuntime.submit)": in_process_latency(runtime, prompts[next(iter(WORKLOADS))])}
        engine_ceilings = {label: engine_ceiling(runtime, prompt) for label, prompt in prompts.items()}
    finally:
        runtime.stop()
    latency["HTTP, embedded quote serve"] = embedded_http_latency(model_dir)
    ceiling = machine_ceiling()

    import ray
    from ray import serve

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rows: dict[tuple[str, int], tuple[float, dict[str, float]]] = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for replicas in (1, 2):
            deploy(replicas, model_dir)
            for label, messages in WORKLOADS.items():
                rows[label, replicas] = throughput(base, messages)
            if replicas == 1:
                latency["one DeploymentHandle call to the engine"] = handle_latency(prompts[next(iter(WORKLOADS))])
                latency["HTTP through Ray Serve (proxy, ingress, engine)"] = http_latency(base)
            serve.delete(NAME)
    finally:
        serve.shutdown()
        ray.shutdown()
    report(rows, ceiling, engine_ceilings, latency)


def report(
    rows: dict[tuple[str, int], tuple[float, dict[str, float]]],
    machine: float,
    engine: dict[str, float],
    latency: dict[str, float],
) -> None:
    print(
        f"\nThroughput, completion tokens/s: {CLIENTS} concurrent clients, up to {NEW_TOKENS} new tokens per request,"
    )
    print(f"1 torch thread per replica, 2 CPUs (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for label in WORKLOADS:
        print(f"  {label}")
        for replicas in (1, 2):
            rate, used = rows[label, replicas]
            shares = ", ".join(f"{k} {v:.0%}" for k, v in used.items())
            print(f"    {replicas} engine replica{'s' if replicas > 1 else ' '}: {rate:7.1f}   CPU: {shares}")
        ratio, bound = rows[label, 2][0] / rows[label, 1][0], min(machine, engine[label])
        print(f"    ratio 2 / 1 replicas: {ratio:.2f}x  [target >= 1.7x]")
        print(
            f"    ceilings: machine {machine:.2f}x, engine batching {engine[label]:.2f}x -> {ratio / bound:.0%} of the lower"
        )
    print(f"\nLatency of a 1-token request, median of {LATENCY_SAMPLES} (sequential)")
    for label, seconds in latency.items():
        print(f"  {label:50} {seconds * 1000:7.2f} ms")
    hop = latency["one DeploymentHandle call to the engine"] - latency["in-process (ModRuntime.submit)"]
    http = latency["HTTP through Ray Serve (proxy, ingress, engine)"] - latency["HTTP, embedded quote serve"]
    print(f"  {'Ray hop (handle call - in-process)':50} {hop * 1000:7.2f} ms per request")
    print(f"  {'Ray Serve HTTP - embedded HTTP':50} {http * 1000:7.2f} ms per request")


if __name__ == "__main__":
    main()
