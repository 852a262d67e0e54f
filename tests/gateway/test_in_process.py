"""`quote serve --gateway`: the same edge inside the embedded server, keys and tenancy with no hop."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from quote_registry.client import RegistryClient
from tests.registry.conftest import ADMIN_KEY
from tests.serving.conftest import Server, start_server

from .conftest import Platform, stop_process

CHAT = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def served(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("in-process") / "serve.log"
    args = ("--gateway", "--registry-url", platform.registry.url, "--served-model-name", "tiny-c")
    server = start_server(log, *args, env={"QUOTE_REGISTRY_API_KEY": platform.service_key})
    yield server
    stop_process(server.process)


def test_keys_are_required_and_tenants_see_their_own_mods(served: Server, platform: Platform) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.v1, api_key="dev", max_retries=0).models.list()
    acme = platform.tenants["acme"].openai(served.v1)
    globex = platform.tenants["globex"].openai(served.v1)
    reply = acme.chat.completions.create(model="tiny-c/acme_private", messages=CHAT, max_tokens=3)
    assert reply.usage.completion_tokens >= 1
    with pytest.raises(openai.NotFoundError):
        globex.chat.completions.create(model="tiny-c/acme:acme_private", messages=CHAT, max_tokens=3)
    assert globex.chat.completions.create(model="tiny-c/acme:acme_public", messages=CHAT, max_tokens=3).usage


def test_traces_are_the_callers_own(served: Server, platform: Platform) -> None:
    acme, globex = (platform.tenants[t].key for t in ("acme", "globex"))
    reply = (
        platform.tenants["acme"].openai(served.v1).chat.completions.create(model="tiny-c", messages=CHAT, max_tokens=2)
    )
    path = f"{served.v1}/traces/{reply.id}"
    assert httpx.get(path, headers={"Authorization": f"Bearer {acme}"}).status_code == 200
    assert httpx.get(path, headers={"Authorization": f"Bearer {globex}"}).status_code == 404


def test_limits_and_usage_apply_in_process(served: Server, platform: Platform) -> None:
    tenant = platform.tenants["globex"]
    key = tenant.new_key(platform.registry, requests_per_minute=2)
    client = tenant.openai(served.v1, key)
    usages = [client.completions.create(model="tiny-c", prompt="one two", max_tokens=3).usage for _ in range(2)]
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model="tiny-c", prompt="one two", max_tokens=3)
    prefix, want = key.split("_")[1], [("tiny-c", 2, sum(u.completion_tokens for u in usages))]
    deadline, found = time.monotonic() + 15, []
    while found != want and time.monotonic() < deadline:  # records arrive in batches, about once a second
        time.sleep(0.2)
        with RegistryClient(platform.registry.url, ADMIN_KEY) as admin:
            rows = [r for r in admin.usage() if r["key_prefix"] == prefix]
        found = [(r["model"], r["requests"], r["completion_tokens"]) for r in rows]
    assert found == want


def test_publishing_in_process_is_refused(served: Server, platform: Platform) -> None:
    headers = {"Authorization": f"Bearer {platform.tenants['acme'].key}"}
    response = httpx.post(served.v1 + "/mods", json={"name": "x"}, headers=headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "publish_through_registry"
    assert httpx.get(served.base_url + "/healthz").status_code == 200
