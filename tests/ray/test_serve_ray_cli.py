"""`quote serve --ray` starts the Ray Serve application on its own local Ray and stops it on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ray.conftest import free_port, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port, log = free_port(), tmp_path_factory.mktemp("serve-ray") / "serve.log"
    env = {**os.environ, "QUOTE_RAY_NUM_CPUS": "1", "QUOTE_RAY_ARGS": json.dumps({"max_replicas": 1})}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, not the tests' cluster
    cmd = [
        sys.executable,
        "-m",
        "quote_cli",
        "serve",
        "--ray",
        "--model",
        "tiny",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    # A session of its own, so teardown can end every process of its Ray if the CLI does not.
    process = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = "quote serve --ray: app"  # printed once serve.run has returned
        wait_until(lambda: started in log.read_text() or process.poll() is not None, 180, "quote serve --ray")
        assert process.poll() is None and _ready(base), log.read_text()
        yield process, base, log
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # Ray processes it left behind, if any
            os.killpg(process.pid, signal.SIGKILL)


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serves_chat_completions_through_ray(cli_server: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    import openai

    _, base, _ = cli_server
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(
        model="quote-tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0
    )
    assert raw.parse().usage.completion_tokens > 0
    assert raw.headers["x-quote-replica"].startswith("quote#QuoteEngine#")


def test_sigterm_shuts_serve_and_ray_down(cli_server: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    process, base, log = cli_server
    process.terminate()
    assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert not _ready(base)
