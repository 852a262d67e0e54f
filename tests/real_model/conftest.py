"""One real `quote serve` with no --model: the trained default (SmolLM2-135M-Instruct, float32).

The first run converts the packaged GGUF into the Quote cache (about a minute); later runs load it
in seconds. Every test module here sets `pytestmark = pytest.mark.real_model`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.ports import free_port
from tests.serving.conftest import Server, wait_ready

MODEL = "smollm2"


@pytest.fixture(scope="session")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`quote serve` exactly as a newcomer runs it: no --model, no QUOTE_MODEL."""
    log = tmp_path_factory.mktemp("serve-default") / "serve.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "QUOTE_MODEL"}
    cmd = [sys.executable, "-m", "quote_cli", "serve", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(process, server.base_url, log, "quote serve (default model)", timeout_s=240)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def http(default_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=default_server.base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def client(default_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=default_server.base_url + "/v1", api_key="dev", max_retries=0, timeout=120)
