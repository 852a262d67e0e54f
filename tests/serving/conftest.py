"""A real `quote serve` process on 127.0.0.1 for end-to-end tests, and clients for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base_url, self.process, self.log = base_url, process, log

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"


def start_server(log: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    model = [] if "--model" in args else ["--model", "tiny"]  # the tiny model unless a test names another
    cmd = [sys.executable, "-m", "quote_cli", "serve", "--port", str(port), "--log-level", "warning", *model, *args]
    out = log.open("wb")
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, base, log, "quote serve", timeout_s=120)
    return Server(base, process, log)


def wait_ready(process: subprocess.Popen[bytes], base: str, log: Path, what: str, *, timeout_s: float) -> None:
    """Poll `base`/readyz until it answers 200; fail with the process log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{what} did not become ready:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    srv = start_server(log, "--max-batch", "16")
    yield srv
    srv.process.terminate()
    try:
        srv.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        srv.process.kill()


@pytest.fixture(scope="session")
def openai_client(server: Server) -> Any:
    import openai

    return openai.OpenAI(base_url=server.v1, api_key="unused-in-dev-mode", max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client
