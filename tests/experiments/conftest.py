"""One real `quote serve --model tiny` for the experiment tests, with a backtracking mod registered."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Server, start_server

MODEL = "quote-tiny"
# Erases its last 3 tokens every 5th step and reinjects " ok": interventions, forced and erased tokens.
REWRITER = """
from quote_mod_sdk import mod, Added

@mod(max_backtrack=4)
def rewriter(event, actions, tokenizer):
    if isinstance(event, Added) and not event.forced and event.step % 5 == 0:
        return actions.backtrack(3, tokenizer.encode(" ok", add_special_tokens=False))
"""


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("experiment-serve") / "serve.log", "--model", "tiny")
    body = {"language": "python", "module": "rewriter", "entrypoint": "rewriter", "name": "rewriter"}
    response = httpx.post(f"{server.base_url}/v1/mods", json={**body, "source": textwrap.dedent(REWRITER)}, timeout=30)
    assert response.status_code in (200, 201), response.text
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


PROMPTS = [f'{{"id": "p{i}", "prompt": "Tell me about the number {i}.", "answer": "{i}"}}' for i in range(5)]


def write_spec(folder: Path, base_url: str, *, extra: str = "", concurrency: int = 2, max_tokens: int = 12) -> Path:
    """A small A/B experiment: the base model against the backtracking mod, scored on the " ok" it injects."""
    (folder / "prompts.jsonl").write_text("\n".join(PROMPTS) + "\n")
    spec = folder / "spec.yaml"
    spec.write_text(
        f"""name: rewriter vs base
base_url: {base_url}/v1
prompts: prompts.jsonl
models: [{MODEL}]
arms:
  - {{name: base}}
  - {{name: rewriter, mod: rewriter}}
samples: 1
temperature: 1.0
seed: 5
max_tokens: {max_tokens}
concurrency: {concurrency}
scorers:
  - {{name: says_ok, kind: contains, value: " ok"}}
{extra}"""
    )
    return spec


def quote(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quote_cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def finished(served: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One experiment run to the end; its spec path (results beside it)."""
    spec = write_spec(tmp_path_factory.mktemp("experiment"), served.base_url)
    done = quote("experiment", "run", spec, "--quiet")
    assert done.returncode == 0, done.stderr
    return spec
