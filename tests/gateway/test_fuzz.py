"""Property-based fuzzing (schemathesis) of every HTTP surface: no answer >= 500, no timeout.

Each run is bounded (a few examples per operation, a fixed seed, a time budget), so CI stays
deterministic and short; the seed changes only when someone changes it here.

    quote serve   its own OpenAPI schema, keyless development server (tiny model)
    gateway       the same OpenAI schema (the gateway proxies it), sent with a real infer key
    registry      its own OpenAPI schema, a fresh SQLite registry, sent with the admin key
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quote_registry.api.app import create_registry_app
from quote_registry.migrate import upgrade
from quote_registry.settings import RegistrySettings
from tests.registry.conftest import ADMIN_KEY, serve_in_thread
from tests.serving.conftest import Server, server  # noqa: F401  (the keyless `quote serve` fixture)

from .conftest import Gateway, Platform

pytestmark = pytest.mark.slow

SEED = 20261204
MAX_EXAMPLES = 25  # per operation; three surfaces stay near a minute on the 2-core CI machine
TIME_LIMIT_S = 240  # a hung server fails the run instead of hanging CI


def _fuzz(schema: str, base_url: str, report: Path, *headers: str, include: str | None = None) -> None:
    """Run schemathesis once; fail with its own report if anything answered >= 500 or timed out."""
    cmd = [str(Path(sys.executable).with_name("st")), "run", schema, "--url", base_url]
    cmd += ["--checks", "not_a_server_error", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)]
    cmd += ["--request-timeout", "30", "--workers", "1"]
    cmd += ["--phases", "examples,coverage,fuzzing", "--generation-database", "none", "--no-color"]
    cmd += ["--suppress-health-check", "all", "--max-failures", "5", "--warnings", "off"]
    for header in headers:
        cmd += ["--header", header]
    if include is not None:
        cmd += ["--include-path-regex", include]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_LIMIT_S, cwd=report.parent)
    report.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"schemathesis found failures ({report}):\n{done.stdout[-6000:]}"


def _schema_file(server_: Server, folder: Path) -> Path:
    schema = httpx.get(server_.base_url + "/openapi.json", timeout=30).json()
    path = folder / "openapi.json"
    path.write_text(json.dumps(schema))
    return path


def test_quote_serve_never_answers_5xx(server: Server, tmp_path: Path) -> None:  # noqa: F811
    # /v1/mods registers code in development mode: fuzzed bodies exercise its validation, never run.
    _fuzz(server.base_url + "/openapi.json", server.base_url, tmp_path / "serve.txt")


def test_the_gateway_never_answers_5xx(
    server: Server,  # noqa: F811
    gateway: Gateway,
    platform: Platform,
    tmp_path: Path,
) -> None:
    schema = _schema_file(server, tmp_path)
    key = platform.tenants["acme"].key
    seen = httpx.get(gateway.v1 + "/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert seen.status_code == 200, "the key must pass auth, or the fuzz would only meet 401s"
    paths = r"^/v1/(chat/completions|completions|models)"
    _fuzz(str(schema), gateway.base_url, tmp_path / "gateway.txt", f"Authorization: Bearer {key}", include=paths)


@pytest.fixture
def fuzz_registry(tmp_path: Path) -> Iterator[str]:
    """A registry of its own: fuzzing as admin creates and revokes things others must not see."""
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    upgrade(url)
    settings = RegistrySettings(database_url=url, bootstrap_admin_key=ADMIN_KEY, dev_mode=False)
    base, running, thread = serve_in_thread(create_registry_app(settings))
    yield base
    running.should_exit = True
    thread.join(timeout=10)


def test_the_registry_never_answers_5xx(fuzz_registry: str, tmp_path: Path) -> None:
    report = tmp_path / "registry.txt"
    _fuzz(fuzz_registry + "/openapi.json", fuzz_registry, report, f"Authorization: Bearer {ADMIN_KEY}")
