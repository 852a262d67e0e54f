"""Snapshot coalescing on engine replicas, and where the KServe entrypoint puts the OpenAI app."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from quote_mod_sdk.generation import GenerationParams
from quote_serving.kserve.routing import install_openai_app
from quote_serving.ray_serve.engine import coalesced
from quote_serving.runtime.requests import GenerationRequest, RequestHandle, Snapshot


def test_coalesced_snapshots_keep_the_lowest_low_water_and_the_final_one() -> None:
    async def run() -> list[Snapshot]:
        handle = RequestHandle(GenerationRequest("r", [1, 2], GenerationParams()), asyncio.get_running_loop())
        handle.publish(Snapshot(output=(5,), low_water=0))
        received = []
        stream = coalesced(handle, interval=0.2)
        received.append(await anext(stream))  # the first goes at once
        pending = asyncio.ensure_future(anext(stream))
        for snapshot in (Snapshot((5, 6), low_water=1), Snapshot((5,), low_water=1), Snapshot((5, 7), low_water=1)):
            handle.publish(snapshot)
            await asyncio.sleep(0.01)
        received.append(await pending)
        handle.publish(Snapshot((5, 7, 8), low_water=2, finished=True, text="x"))
        received += [s async for s in stream]
        return received

    first, merged, final = asyncio.run(run())
    assert first.output == (5,)
    assert merged.output == (5, 7) and merged.low_water == 1  # three steps, one message
    assert final.finished


def test_the_final_snapshot_is_not_held_back_by_the_interval() -> None:
    async def run() -> Snapshot:
        handle = RequestHandle(GenerationRequest("r", [1], GenerationParams()), asyncio.get_running_loop())
        stream = coalesced(handle, interval=3600)
        handle.publish(Snapshot((5,)))
        await anext(stream)
        handle.publish(Snapshot((5, 6), low_water=1))
        handle.publish(Snapshot((5, 6, 7), low_water=2, finished=True, text="x"))
        return await asyncio.wait_for(anext(stream), timeout=30)

    final = asyncio.run(run())
    assert final.finished and final.low_water == 1


def _apps() -> tuple[FastAPI, FastAPI]:
    host, openai_app = FastAPI(), FastAPI()

    @host.get("/v2/health/ready")
    async def kserve_ready() -> dict[str, bool]:
        return {"ready": True}

    @host.get("/v1/models/{name}")
    async def kserve_v1_model(name: str) -> dict[str, str]:
        return {"protocol": "kserve-v1", "name": name}

    @openai_app.get("/v1/models/{model:path}")
    async def openai_model(model: str) -> dict[str, str]:
        return {"object": "model", "id": model}

    return host, openai_app


@pytest.mark.parametrize(("prefix", "openai_path"), [("", "/v1/models/m"), ("/openai", "/openai/v1/models/m")])
def test_openai_app_is_served_at_its_prefix_beside_kserve_routes(prefix: str, openai_path: str) -> None:
    host, openai_app = _apps()
    install_openai_app(host, openai_app, prefix)
    client = TestClient(host)
    assert client.get(openai_path).json() == {"object": "model", "id": "m"}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    if prefix:
        assert client.get("/v1/models/m").json()["protocol"] == "kserve-v1"
