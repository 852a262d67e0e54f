"""Soak with a fault: mixed traffic through the gateway while one replica is killed and restarted.

    registry (in this process, SQLite)   tenant "soak": an infer key, signed mods noop and mask
    replicas R1, R2 (`quote serve`)      tiny model, QUOTE_GATEWAY_SECRET: gateway only
    gateway (`quote gateway`)            routes tiny → [R1, R2]
    client                               --requests spread over --duration seconds, each in its own
                                         thread: streaming or not, with a mod or without (round robin)
    fault                                R2 SIGKILLed at 40 % of the run, restarted on its port at 55 %

Every request ends in one of three ways: completed (an answer with a finish reason), cleanly failed
(an OpenAI-shaped error or an error event in the stream, within its timeout) or lost (anything else:
a timeout, a dropped connection without an error, a malformed answer). Prints the counts, latency
p50/p99 of completed requests, 5xx answers and RSS of the gateway and of R1 at start and end.
Targets: 0 lost; 5xx only while R2 is down; RSS within 10 %.

    .venv/bin/python bench/soak.py                 # 200 requests over 300 s
    .venv/bin/python bench/soak.py --requests 20 --duration 30
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import uvicorn
from bench_mods import mask, noop
from openai.types.chat import ChatCompletionUserMessageParam

from quote_mod_sdk import keygen, serialize_mod
from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient
from quote_registry.migrate import upgrade
from quote_registry.settings import RegistrySettings

ADMIN_KEY = "qk_admin0soak_" + "s" * 40
SECRET = "soak-gateway-secret-" + "x" * 24
REQUEST_TIMEOUT_S = 90.0
BURST = 8  # long streaming requests sent just before the kill


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Outcome:
    kind: str  # completed | failed | lost
    seconds: float
    status: int | None
    detail: str
    started: float


class Platform:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        url = f"sqlite:///{folder / 'registry.db'}"
        upgrade(url)
        settings = RegistrySettings(database_url=url, bootstrap_admin_key=ADMIN_KEY, dev_mode=False)
        port = free_port()
        self.registry = uvicorn.Server(
            uvicorn.Config(create_registry_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=self.registry.run, daemon=True).start()
        self.registry_url = f"http://127.0.0.1:{port}"
        while not self.registry.started:
            time.sleep(0.05)
        with RegistryClient(self.registry_url, ADMIN_KEY) as admin:
            admin.create_tenant("platform")
            admin.create_tenant("soak")
            self.service_key = str(
                admin.create_key(scopes=["service", "infer"], tenant="platform", acts_for=["soak"])["key"]
            )
            self.key = str(admin.create_key(scopes=["infer", "publish"], tenant="soak", name="soak")["key"])
        signing = keygen()
        with RegistryClient(self.registry_url, self.key) as tenant:
            tenant.add_signing_key(signing.public_b64())
            for name, handler in (("noop", noop), ("mask", mask)):
                tenant.publish(name, "1.0.0", serialize_mod(handler), key=signing)
        self.ports = {"R1": free_port(), "R2": free_port()}
        self.replicas: dict[str, subprocess.Popen[bytes]] = {}
        for label in self.ports:
            self.start_replica(label)
        routes = folder / "routes.yaml"
        urls = [f"http://127.0.0.1:{p}/v1" for p in self.ports.values()]
        routes.write_text(f"routes:\n  - model: tiny\n    replicas: {urls}\n")
        gw_port = free_port()
        cmd = [sys.executable, "-m", "quote_cli", "gateway", "--routes", str(routes), "--port", str(gw_port)]
        cmd += ["--registry-url", self.registry_url, "--log-level", "warning"]
        env = {**os.environ, "QUOTE_REGISTRY_API_KEY": self.service_key, "QUOTE_GATEWAY_SECRET": SECRET}
        self.gateway = subprocess.Popen(
            cmd, stdout=(folder / "gateway.log").open("ab"), stderr=subprocess.STDOUT, env=env
        )
        self.gateway_url = f"http://127.0.0.1:{gw_port}"
        wait_ready(self.gateway_url, self.gateway, "gateway")

    def start_replica(self, label: str) -> None:
        port = self.ports[label]
        cmd = [sys.executable, "-m", "quote_cli", "serve", "--model", "tiny", "--served-model-name", "tiny"]
        cmd += ["--port", str(port), "--registry-url", self.registry_url, "--log-level", "warning", "--max-batch", "8"]
        env = {**os.environ, "QUOTE_REGISTRY_API_KEY": self.service_key, "QUOTE_GATEWAY_SECRET": SECRET}
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
        log = (self.folder / f"{label}.log").open("ab")
        self.replicas[label] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_ready(f"http://127.0.0.1:{port}", self.replicas[label], label)

    def kill(self, label: str) -> None:
        self.replicas[label].send_signal(signal.SIGKILL)
        self.replicas[label].wait()

    def stop(self) -> None:
        for process in (self.gateway, *self.replicas.values()):
            process.terminate()
        for process in (self.gateway, *self.replicas.values()):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.registry.should_exit = True


def one_request(client: openai.OpenAI, index: int, started: float, max_tokens: int = 48) -> Outcome:
    model = ("tiny", "tiny/noop", "tiny/mask")[index % 3]
    stream = index % 2 == 1
    messages: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": f"Request {index}: tell me."}]
    begin = time.monotonic()
    try:
        if stream:
            finish = None
            chunks = client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                stream=True,
            )
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
            kind = "completed" if finish else "lost"
            return Outcome(kind, time.monotonic() - begin, 200, f"finish={finish}", started)
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens)
        kind = "completed" if reply.choices[0].finish_reason else "lost"
        return Outcome(kind, time.monotonic() - begin, 200, "", started)
    except openai.APIStatusError as exc:
        shaped = isinstance(exc.body, dict) and "message" in exc.body
        return Outcome(
            "failed" if shaped else "lost", time.monotonic() - begin, exc.status_code, str(exc)[:120], started
        )
    except openai.APIError as exc:  # an error event inside a stream is a clean failure too
        clean = not isinstance(exc, openai.APIConnectionError)
        return Outcome("failed" if clean else "lost", time.monotonic() - begin, None, repr(exc)[:120], started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--duration", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quote-soak-") as tmp:
        platform = Platform(Path(tmp))
        try:
            run(platform, args.requests, args.duration)
        finally:
            platform.stop()


def run(platform: Platform, requests: int, duration: float) -> None:
    client = openai.OpenAI(
        base_url=platform.gateway_url + "/v1", api_key=platform.key, max_retries=0, timeout=REQUEST_TIMEOUT_S
    )
    one_request(client, 0, 0.0)  # warm both paths once before measuring memory
    rss_start = {"gateway": rss_mb(platform.gateway.pid), "R1": rss_mb(platform.replicas["R1"].pid)}
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    kill_at, restart_at = 0.40 * duration, 0.55 * duration
    down: list[float] = []

    def fault() -> None:
        # A burst of long requests just before the kill, so R2 surely has some in flight when it dies.
        time.sleep(kill_at - 1.0)
        for index in range(requests, requests + BURST):
            burst = threading.Thread(target=worker, args=(index, 400), daemon=True)
            burst.start()
            threads.append(burst)
        time.sleep(1.0)
        down.append(time.monotonic() - t0)
        platform.kill("R2")
        time.sleep(restart_at - kill_at)
        platform.start_replica("R2")
        down.append(time.monotonic() - t0)

    def worker(index: int, max_tokens: int = 48) -> None:
        outcome = one_request(client, index, time.monotonic() - t0, max_tokens)
        with lock:
            outcomes.append(outcome)

    t0 = time.monotonic()
    threads = [threading.Thread(target=fault, daemon=True)]
    threads[0].start()
    for index in range(requests):
        time.sleep(max(0.0, t0 + index * duration / requests - time.monotonic()))
        thread = threading.Thread(target=worker, args=(index,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 60)
    elapsed = time.monotonic() - t0
    rss_end = {"gateway": rss_mb(platform.gateway.pid), "R1": rss_mb(platform.replicas["R1"].pid)}

    counts = {kind: sum(o.kind == kind for o in outcomes) for kind in ("completed", "failed", "lost")}
    counts["lost"] += requests + BURST - len(outcomes)  # a thread that never returned
    latencies = sorted(o.seconds for o in outcomes if o.kind == "completed")
    fives = [o for o in outcomes if o.status is not None and o.status >= 500]
    window = (down[0], down[1] + 5.0) if len(down) == 2 else (0.0, float("inf"))
    outside = [o for o in fives if not (window[0] - REQUEST_TIMEOUT_S <= o.started <= window[1])]
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan")
    print(f"soak: {requests} + {BURST} (burst at the kill) requests over {elapsed:.0f} s")
    print(f"  R2 killed at {down[0]:.0f} s, back at {down[1]:.0f} s")
    print(f"  completed {counts['completed']}   cleanly failed {counts['failed']}   lost {counts['lost']}")
    print(f"  5xx answers {len(fives)} (outside R2's outage: {len(outside)})")
    print(f"  latency of completed requests: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    for name in rss_start:
        change = rss_end[name] / rss_start[name] - 1
        print(f"  RSS {name}: {rss_start[name]:.0f} MB → {rss_end[name]:.0f} MB ({change:+.1%})")
    for o in outcomes:
        if o.kind != "completed":
            print(f"    {o.kind} at {o.started:.0f} s: status {o.status} {o.detail}")
    verdict = counts["lost"] == 0 and not outside and all(abs(rss_end[n] / rss_start[n] - 1) <= 0.10 for n in rss_start)
    print(f"targets (0 lost, 5xx only during the outage, RSS within 10 %): {'met' if verdict else 'NOT met'}")


if __name__ == "__main__":
    main()
