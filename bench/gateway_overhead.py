"""What the gateway adds to a request: latency over calling the replica directly, next to LiteLLM's proxy.

Run: .venv/bin/python bench/gateway_overhead.py [--requests 500] [--litellm PATH]

Starts, on 127.0.0.1: a registry (SQLite), one `quote serve` replica (tiny model), `quote gateway`
in front of it (key checked and cached, per-key limits in memory, usage recorded), the same
gateway with its limits in Redis (when redis-server is installed), and LiteLLM's proxy
(`litellm[proxy]`, installed in its own venv: LITELLM below) in front of the same replica. Then
sends the same request round-robin to every target, one at a time over a kept-alive connection,
so drift on a shared machine hits all targets alike:

  upstream "replica": POST /v1/completions, max_tokens=1 on `quote serve` (the real path)
  upstream "static":  the same request to a server that answers instantly (the proxy's cost alone,
                      without the engine's noise)

Added latency = a target's percentile minus the direct call's. Targets: ours p50 ≤ 1 ms and
p99 ≤ 5 ms added, and at least 4× less added than LiteLLM. Prints ratios; asserts nothing.
LiteLLM is skipped, with the reason printed, when it is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from quote_registry.client import RegistryClient

ADMIN = "qk_benchadmin_" + "b" * 40
LITELLM_KEY = "sk-bench-" + "l" * 24
NOISE_MS = 0.05  # below this an added latency is indistinguishable from zero here
LITELLM = os.environ.get("QUOTE_BENCH_LITELLM", "/tmp/litellm-venv/bin/litellm")
BODY = {"model": "quote-tiny", "prompt": "Hi", "max_tokens": 1, "temperature": 0}
STATIC_ANSWER = json.dumps(
    {
        "id": "cmpl-static",
        "object": "text_completion",
        "created": 0,
        "model": "quote-tiny",
        "choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def wait_ready(url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


async def static_upstream(scope: Any, receive: Any, send: Any) -> None:
    """Answers every completion at once: isolates the proxies' own cost."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(STATIC_ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": STATIC_ANSWER})


@contextlib.contextmanager
def process(cmd: list[str], ready: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_ready(ready, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed: skipping the Redis-backed gateway")
        yield None
        return
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(0.3)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def keys(registry: str) -> tuple[str, str]:
    """(the gateway's service key, a tenant key with generous limits, so the limiter runs)."""
    with RegistryClient(registry, ADMIN) as admin:
        admin.create_tenant("bench")
        service = admin.create_key(scopes=["service", "infer"], name="gateway", acts_for=["bench"])["key"]
        limits = {"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000, "max_concurrent": 64}
        tenant = admin.create_key(scopes=["infer"], tenant="bench", limits=limits)["key"]
    return service, tenant


def gateway_cmd(routes: Path, registry: str, port: int) -> list[str]:
    cmd = [sys.executable, "-m", "quote_cli", "gateway", "--routes", str(routes), "--registry-url", registry]
    return [*cmd, "--port", str(port), "--log-level", "warning"]


def write_routes(path: Path, upstreams: dict[str, str]) -> Path:
    routes = [{"model": name, "replicas": [url]} for name, url in upstreams.items()]
    path.write_text(json.dumps({"routes": routes}))
    return path


def litellm_config(path: Path, upstreams: dict[str, str]) -> Path:
    models = [
        {"model_name": name, "litellm_params": {"model": "openai/quote-tiny", "api_base": url, "api_key": "unused"}}
        for name, url in upstreams.items()
    ]
    path.write_text(json.dumps({"model_list": models, "general_settings": {"master_key": LITELLM_KEY}}))
    return path


def measure(targets: dict[str, tuple[str, str]], model: str, n: int) -> dict[str, list[float]]:
    """Round-robin over targets (base URL, key), one request at a time, `n` each after a warm-up."""
    clients = {
        name: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for name, (url, key) in targets.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    body = {**BODY, "model": model}
    for i in range(n + 30):
        for name, client in clients.items():
            started = time.perf_counter()
            response = client.post("/v1/completions", json=body)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
            if i >= 30:
                samples[name].append(elapsed)
    for client in clients.values():
        client.close()
    return samples


def report(title: str, samples: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    direct = samples["direct"]
    base50, base99 = pct(direct, 0.5), pct(direct, 0.99)
    print(f"\n{title}")
    print(f"{'target':<28}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}")
    added = {}
    for name, values in samples.items():
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        added[name] = (p50 - base50, p99 - base99)
        extra = "" if name == "direct" else f"{p50 - base50:>11.2f}{p99 - base99:>11.2f}"
        print(f"{name:<28}{p50:>9.2f}{p99:>9.2f}{extra}")
    return added


def _times(theirs: float, ours: float) -> str:
    if ours < NOISE_MS:
        return f"∞ (ours is within noise of direct; LiteLLM adds {theirs:.2f} ms)"
    return f"{theirs / ours:.1f}×"


def ratios(added: dict[str, tuple[float, float]]) -> None:
    ours = added["quote gateway"]
    verdict = ["ok" if ours[0] <= 1.0 else "MISSED", "ok" if ours[1] <= 5.0 else "MISSED"]
    print(f"  ours added: p50 {ours[0]:.2f} ms [≤ 1: {verdict[0]}], p99 {ours[1]:.2f} ms [≤ 5: {verdict[1]}]")
    if "quote gateway + redis" in added:
        redis = added["quote gateway + redis"]
        print(f"  with Redis limits: p50 {redis[0]:.2f} ms, p99 {redis[1]:.2f} ms added")
    if "litellm proxy" in added:
        theirs = added["litellm proxy"]
        print(
            f"  LiteLLM's added latency / ours: p50 {_times(theirs[0], ours[0])}, p99 {_times(theirs[1], ours[1])}"
            " [target ≥ 4×]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="measured requests per target and upstream")
    parser.add_argument("--litellm", default=LITELLM, help="the `litellm` executable (its own venv)")
    parser.add_argument("--serve-static", type=int, help=argparse.SUPPRESS)  # this file as the static upstream
    args = parser.parse_args()
    if args.serve_static:
        uvicorn.run(static_upstream, host="127.0.0.1", port=args.serve_static, log_level="warning")
        return
    folder = Path(tempfile.mkdtemp(prefix="quote-gw-bench-"))
    # Every server is a process of its own: none shares the measuring client's interpreter.
    ports = {name: free_port() for name in ("registry", "replica", "static", "gw", "gw_redis", "litellm")}
    registry, replica = f"http://127.0.0.1:{ports['registry']}", f"http://127.0.0.1:{ports['replica']}/v1"
    static = f"http://127.0.0.1:{ports['static']}/v1"
    upstreams = {"quote-tiny": replica, "static": static}
    routes = write_routes(folder / "routes.json", upstreams)
    quote = [sys.executable, "-m", "quote_cli"]
    registry_env = {
        "QUOTE_REGISTRY_DATABASE_URL": f"sqlite:///{folder / 'registry.db'}",
        "QUOTE_REGISTRY_BOOTSTRAP_ADMIN_KEY": ADMIN,
    }
    with contextlib.ExitStack() as stack:
        cmd = [*quote, "registry", "serve", "--port", str(ports["registry"])]
        stack.enter_context(process(cmd, registry + "/healthz", folder / "registry.log", registry_env))
        service_key, tenant_key = keys(registry)
        env = {"QUOTE_REGISTRY_API_KEY": service_key, "QUOTE_GATEWAY_SECRET": "bench-secret-" + "s" * 32}
        cmd = [*quote, "serve", "--model", "tiny", "--port", str(ports["replica"]), "--log-level", "warning"]
        stack.enter_context(process(cmd, replica.removesuffix("/v1") + "/readyz", folder / "serve.log"))
        cmd = [sys.executable, __file__, "--serve-static", str(ports["static"])]
        stack.enter_context(process(cmd, static.removesuffix("/v1") + "/healthz", folder / "static.log"))
        gw_port, gw_redis_port, litellm_port = ports["gw"], ports["gw_redis"], ports["litellm"]
        gw = f"http://127.0.0.1:{gw_port}"
        stack.enter_context(process(gateway_cmd(routes, registry, gw_port), gw + "/readyz", folder / "gw.log", env))
        targets = {"direct": (replica.removesuffix("/v1"), "unused"), "quote gateway": (gw, tenant_key)}
        redis_url = stack.enter_context(redis_server(folder))
        if redis_url is not None:
            gwr = f"http://127.0.0.1:{gw_redis_port}"
            redis_env = {**env, "QUOTE_GATEWAY_REDIS_URL": redis_url}
            cmd = gateway_cmd(routes, registry, gw_redis_port)
            stack.enter_context(process(cmd, gwr + "/readyz", folder / "gw-redis.log", redis_env))
            targets["quote gateway + redis"] = (gwr, tenant_key)
        if Path(args.litellm).exists():
            cfg = litellm_config(folder / "litellm.json", upstreams)
            cmd = [args.litellm, "--config", str(cfg), "--port", str(litellm_port), "--host", "127.0.0.1"]
            litellm_env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
            url = f"http://127.0.0.1:{litellm_port}"
            stack.enter_context(process(cmd, url + "/health/liveliness", folder / "litellm.log", litellm_env))
            targets["litellm proxy"] = (url, LITELLM_KEY)
        else:
            print(
                f"LiteLLM skipped: {args.litellm} not found (python3 -m venv /tmp/litellm-venv && "
                "/tmp/litellm-venv/bin/pip install 'litellm[proxy]')"
            )
        print(f"{args.requests} requests per target, round-robin, one at a time; POST /v1/completions max_tokens=1")
        for model, title in (("quote-tiny", "upstream: quote serve (tiny model)"), ("static", "upstream: static")):
            direct_url = replica if model == "quote-tiny" else static
            run_targets = {**targets, "direct": (direct_url.removesuffix("/v1"), "unused")}
            ratios(report(title, measure(run_targets, model, args.requests)))


if __name__ == "__main__":
    main()
