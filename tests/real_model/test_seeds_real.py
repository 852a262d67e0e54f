"""Every seed example's mod runs on the trained default model and answers without an error."""

from __future__ import annotations

import httpx
import openai
import pytest

from quote_mod_sdk import serialize_mod
from tests.real_model.conftest import MODEL
from tests.sdk.conftest import load_seed
from tests.serving.test_openai_e2e import SEED_MODS

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def seeds(http: httpx.Client) -> dict[str, str]:
    ids = {}
    for seed, attr in SEED_MODS.items():
        response = http.post("/v1/mods", json=serialize_mod(getattr(load_seed(seed), attr), name=f"seed_{seed}"))
        assert response.status_code in (200, 201), response.text
        ids[seed] = f"{MODEL}/seed_{seed}"
    return ids


def test_every_seed_runs_on_the_trained_model(client: openai.OpenAI, seeds: dict[str, str]) -> None:
    plain = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hi."}], temperature=0, max_tokens=32
    )
    for seed, model in seeds.items():
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hi."}], temperature=0, max_tokens=32
        )
        choice = reply.choices[0]
        assert choice.finish_reason in ("stop", "length", "tool_calls"), (seed, choice)
        assert choice.message.content or choice.message.tool_calls, seed
        if seed in ("skeleton", "runtime_control"):  # the no-op seeds change nothing
            assert choice.message.content == plain.choices[0].message.content
        if seed == "classifier":
            assert (choice.message.content or "").startswith((" Choose: A or B A\n", " Choose: A or B B\n"))
        if seed in ("tool_router", "emit_tool_call"):
            assert choice.finish_reason == "tool_calls"
