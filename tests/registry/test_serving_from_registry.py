"""`quote serve --registry-url`: signed mods from the registry, verified before they load."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import openai
import pytest

from quote_mod_sdk import keygen, serialize_mod
from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient
from quote_registry.migrate import upgrade
from quote_registry.settings import RegistrySettings
from tests.sdk.conftest import load_seed
from tests.serving.conftest import start_server

from .conftest import ADMIN_KEY, RunningRegistry, serve_in_thread


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('reg') / 'registry.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    settings = RegistrySettings(database_url=database_url, bootstrap_admin_key=ADMIN_KEY)
    url, uvicorn_server, thread = serve_in_thread(create_registry_app(settings))
    registry = RunningRegistry(url, settings)
    creds = registry.tenant_with_keys("prod")
    client = RegistryClient(registry.url, creds["key"])
    key = keygen()
    client.add_signing_key(key.public_b64())
    client.publish("tools", "1.0.0", serialize_mod(load_seed("tool_router").route_tools), key=key)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    server = start_server(log, "--registry-url", registry.url, env={"QUOTE_REGISTRY_API_KEY": creds["key"]})
    yield server, client, key
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


def _chat(server, model: str):  # type: ignore[no-untyped-def]
    api = openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0)
    return api.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)


def test_signed_mod_from_the_registry_serves_and_lists(served) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = served
    choice = _chat(server, "quote-tiny/tools@1.0.0").choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].function.name == "search_docs"
    api = openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0)
    models = {m.id: m for m in api.models.list().data}
    assert "quote-tiny/tools" in models and models["quote-tiny"].model_extra["unsigned_mods_allowed"] is False


def test_tampered_bundle_in_the_database_is_refused_at_load(served, database_url: str) -> None:  # type: ignore[no-untyped-def]
    server, client, key = served
    client.publish("victim", "1.0.0", serialize_mod(load_seed("skeleton").my_mod), key=key)
    with sqlite3.connect(database_url.split("///", 1)[1]) as db:
        db.execute(
            "UPDATE mod_versions SET bundle = replace(bundle, 'noop()', 'noop() or None') WHERE version = '1.0.0'"
        )
    with pytest.raises(openai.PermissionDeniedError, match="does not match the signed digest"):
        _chat(server, "quote-tiny/victim")


def test_unsigned_mods_are_refused_by_a_registry_backed_server(served) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = served
    import httpx

    response = httpx.post(server.v1 + "/mods", json=serialize_mod(load_seed("skeleton").my_mod, name="plain"))
    assert response.status_code == 400 and "development mode" in response.json()["error"]["message"]


def test_revoked_signing_key_stops_the_mod_loading(served) -> None:  # type: ignore[no-untyped-def]
    # Runs last in this module: it revokes the key the other tests publish with.
    server, client, key = served
    assert _chat(server, "quote-tiny/tools").choices[0].finish_reason == "tool_calls"
    client.revoke_signing_key(key.key_id)
    time.sleep(2.5)  # the server re-resolves after its 2 s cache
    with pytest.raises(openai.PermissionDeniedError, match="no longer trusts"):
        _chat(server, "quote-tiny/tools")
