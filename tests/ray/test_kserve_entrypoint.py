"""`python -m quote_serving.kserve`: KServe's ModelServer serving the OpenAI app, driven by the real client.

Configured as the chart's ServingRuntime and the operator configure it: `--model_name` from KServe,
the served model name from QUOTE_SERVED_MODEL_NAME, the OpenAI API at the root (`/v1`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from quote_mod_sdk import serialize_mod
from tests.ray.conftest import free_port, wait_until
from tests.ray.mods import MARK, mark

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kserve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port, log = free_port(), tmp_path_factory.mktemp("kserve") / "kserve.log"
    cmd = [sys.executable, "-m", "quote_serving.kserve", "--model_name=tiny-isvc", f"--http_port={port}"]
    env = {**os.environ, "QUOTE_SERVED_MODEL_NAME": "quote-tiny"}
    process = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(base) or process.poll() is not None, 120, "the KServe entrypoint to be ready")
        assert process.poll() is None, log.read_text()
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_kserve_health_routes_stay_beside_the_openai_api(kserve_server: tuple[subprocess.Popen[bytes], str]) -> None:
    _, base = kserve_server
    assert httpx.get(f"{base}/v2/health/ready", timeout=10).json() == {"ready": True}
    assert httpx.get(f"{base}/v2/models/tiny-isvc/ready", timeout=10).json()["ready"] is True
    assert httpx.get(f"{base}/v1/models", timeout=10).json()["object"] == "list"  # OpenAI's, not KServe V1's


def test_openai_client_chats_with_and_without_a_mod(kserve_server: tuple[subprocess.Popen[bytes], str]) -> None:
    import openai

    _, base = kserve_server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
    messages = [{"role": "user", "content": "Hi"}]
    plain = client.chat.completions.create(model="quote-tiny", messages=messages, max_tokens=8, temperature=0)
    assert plain.usage.completion_tokens == 8
    streamed = client.chat.completions.create(
        model="quote-tiny", messages=messages, max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == plain.choices[0].message.content
    registered = httpx.post(f"{base}/v1/mods", json=serialize_mod(mark, name="mark"), timeout=30)
    assert registered.status_code == 201, registered.text
    modded = client.chat.completions.create(model="quote-tiny/mark", messages=messages, max_tokens=8)
    assert modded.choices[0].message.content == MARK
    assert "quote-tiny/mark" in {m.id for m in client.models.list().data}


def test_sigterm_stops_the_server(kserve_server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, base = kserve_server
    process.terminate()
    process.wait(timeout=60)
    assert not _ready(base)
