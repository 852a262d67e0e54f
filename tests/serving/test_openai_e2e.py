"""End to end: the real `openai` client against `quote serve`, with the seeds' mods registered
through `POST /v1/mods` and selected by the model suffix, streaming and not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from quote_mod_sdk import serialize_mod
from tests.gateway.conftest import stop_process
from tests.sdk.conftest import load_seed
from tests.serving.conftest import Server, start_server

MODEL = "quote-tiny"
SEED_MODS = {  # seed file → attribute holding the mod
    "skeleton": "my_mod",
    "replace_phrase": "replace_phrase",
    "ban_em_dash": "ban_em_dash",
    "backtrack_phrase": "backtrack_phrase",
    "emit_tool_call": "emit_tool_call",
    "question_tags": "question_tags",
    "classifier": "classifier",
    "flow_confirm": "flow_mod",
    "runtime_control": "runtime_control",
    "prefill_patch": "patch_prefill",
    "logits_guard": "logits_guard",
    "trajectory_rewrite": "revise_suffix",
    "tool_router": "route_tools",
    "flow_engine": "runtime_flow",
}


@pytest.fixture(scope="module", params=["inline", "process"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every test here runs twice: mods inline, and mods in confined worker processes (issue 13:
    the seeds' examples behave the same with isolation on)."""
    log = tmp_path_factory.mktemp(f"serve-{request.param}") / "serve.log"
    srv = start_server(log, "--max-batch", "16", "--mod-isolation", request.param)
    yield srv
    stop_process(srv.process)


@pytest.fixture(scope="module")
def openai_client(server: Server) -> Any:
    import openai

    return openai.OpenAI(base_url=server.v1, api_key="unused-in-dev-mode", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def registered(http: httpx.Client) -> dict[str, str]:
    """Register every seed mod over HTTP, exactly as the guide says; returns seed → model id."""
    ids = {}
    for seed, attr in SEED_MODS.items():
        payload = serialize_mod(getattr(load_seed(seed), attr), name=seed)
        response = http.post("/v1/mods", json=payload)
        assert response.status_code in (200, 201), response.text
        ids[seed] = f"{MODEL}/{seed}"
    return ids


def chat(client: Any, model: str, content: str = "Hi", **kwargs: Any) -> Any:
    params = {"temperature": 0, "seed": 1, "max_tokens": 24, **kwargs}
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **params)


def stream_text(client: Any, model: str, content: str = "Hi", **kwargs: Any) -> tuple[str, list[Any]]:
    chunks = list(chat(client, model, content, stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def trace(http: httpx.Client, request_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/traces/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_models_lists_base_and_registered_mods(openai_client, registered) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id for m in openai_client.models.list().data}
    assert MODEL in ids and set(registered.values()) <= ids


@pytest.mark.parametrize("seed", ["skeleton", "runtime_control"])
def test_noop_mods_leave_generation_unchanged(openai_client, registered, seed: str) -> None:  # type: ignore[no-untyped-def]
    plain = chat(openai_client, MODEL).choices[0].message.content
    assert chat(openai_client, registered[seed]).choices[0].message.content == plain
    assert stream_text(openai_client, registered[seed])[0] == plain


def test_replace_phrase_rewrites_what_the_model_sees(openai_client, http, registered) -> None:  # type: ignore[no-untyped-def]
    response = chat(openai_client, registered["replace_phrase"], "Say hi.", max_tokens=4)
    prompt = trace(http, response.id)["prompt"]["text"]
    assert "Say bye." in prompt and "Say hi." not in prompt


def test_prefill_patch_prepends_the_system_line(openai_client, http, registered) -> None:  # type: ignore[no-untyped-def]
    response = chat(openai_client, registered["prefill_patch"], max_tokens=4)
    assert trace(http, response.id)["prompt"]["text"].startswith("System: answer concisely\n<|im_start|>user")


@pytest.mark.parametrize(("seed", "text"), [("ban_em_dash", "—"), ("logits_guard", "unsafe")])
def test_logit_masks_never_let_the_token_through(openai_client, http, tokenizer, registered, seed, text) -> None:  # type: ignore[no-untyped-def]
    banned = tokenizer.encode(text, add_special_tokens=False)[0]
    response = chat(openai_client, registered[seed], temperature=1.5, seed=3, max_tokens=48)
    steps = trace(http, response.id)
    assert banned not in [t["token"] for t in steps["tokens"]]
    assert {c["action"] for c in steps["mod_calls"] if c["event"] == "ForwardPass"} == {"adjust_logits"}


@pytest.mark.parametrize("stream", [False, True])
def test_self_prompt_question_is_tagged(openai_client, registered, stream: bool) -> None:  # type: ignore[no-untyped-def]
    model = registered["question_tags"]
    text = (
        stream_text(openai_client, model, max_tokens=40)[0]
        if stream
        else chat(openai_client, model, max_tokens=40).choices[0].message.content
    )
    assert text.startswith(" Wrap a question in <question_to_user> tags: <question_to_user>")


@pytest.mark.parametrize("stream", [False, True])
def test_classifier_answers_a_or_b_and_forces_the_newline(openai_client, registered, stream: bool) -> None:  # type: ignore[no-untyped-def]
    model = registered["classifier"]
    text = stream_text(openai_client, model)[0] if stream else chat(openai_client, model).choices[0].message.content
    assert text.startswith((" Choose: A or B A\n", " Choose: A or B B\n"))


def test_flow_confirm_asks_and_routes(openai_client, registered) -> None:  # type: ignore[no-untyped-def]
    text = chat(openai_client, registered["flow_confirm"], max_tokens=30).choices[0].message.content
    # FlowQuestion forces "\n" after the answer by default, as the original SDK does
    assert text.startswith((" Proceed? (yes/no): yes\nOk!", " Proceed? (yes/no): no\n"))


def test_trajectory_rewrite_restates_after_step_30(openai_client, registered) -> None:  # type: ignore[no-untyped-def]
    response = chat(openai_client, registered["trajectory_rewrite"], max_tokens=40)
    assert response.choices[0].message.content.endswith("Let's restate clearly:")
    assert stream_text(openai_client, registered["trajectory_rewrite"], max_tokens=40)[0].endswith(
        "Let's restate clearly:"
    )


@pytest.mark.parametrize(("seed", "name"), [("tool_router", "search_docs"), ("emit_tool_call", "search")])
def test_tool_calls_are_openai_correct(openai_client, registered, seed: str, name: str) -> None:  # type: ignore[no-untyped-def]
    choice = chat(openai_client, registered[seed]).choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == name and call.id.startswith("call_")
    _, chunks = stream_text(openai_client, registered[seed])
    streamed = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in streamed] == [name]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_flow_engine_routes_to_a_tool_or_erases(openai_client, registered) -> None:  # type: ignore[no-untyped-def]
    choice = chat(openai_client, registered["flow_engine"], max_tokens=30).choices[0]
    if choice.finish_reason == "tool_calls":
        assert choice.message.tool_calls[0].function.name == "search_docs"
    else:
        assert "Should I call a runtime tool?" not in choice.message.content


def test_backtrack_mod_runs_streaming_and_not(openai_client, registered) -> None:  # type: ignore[no-untyped-def]
    text = chat(openai_client, registered["backtrack_phrase"]).choices[0].message.content
    assert stream_text(openai_client, registered["backtrack_phrase"])[0] == text


def test_streaming_equals_non_streaming_with_usage(openai_client) -> None:  # type: ignore[no-untyped-def]
    plain = chat(openai_client, MODEL, max_tokens=20)
    text, chunks = stream_text(openai_client, MODEL, max_tokens=20, stream_options={"include_usage": True})
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens == 20
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens


def test_completions_endpoint_and_logprobs(openai_client) -> None:  # type: ignore[no-untyped-def]
    response = openai_client.completions.create(model=MODEL, prompt="Say hi.", max_tokens=5, temperature=0, logprobs=2)
    choice = response.choices[0]
    assert len(choice.logprobs.tokens) == 5 and all(len(t) == 2 for t in choice.logprobs.top_logprobs)
    chat_lp = chat(openai_client, MODEL, max_tokens=3, logprobs=True, top_logprobs=2).choices[0].logprobs
    assert len(chat_lp.content) == 3 and all(len(c.top_logprobs) == 2 for c in chat_lp.content)


def test_trace_records_tokens_and_mod_calls(openai_client, http, registered) -> None:  # type: ignore[no-untyped-def]
    response = chat(openai_client, registered["trajectory_rewrite"], max_tokens=36)
    steps = trace(http, response.id)
    assert steps["mod"] == "trajectory_rewrite"
    assert any(t["erased"] for t in steps["tokens"]) and any(t["kind"] == "forced" for t in steps["tokens"])
    assert all(len(t["top_logprobs"]) == 5 for t in steps["tokens"] if t["kind"] == "sampled")
    assert any(c["action"] == "backtrack" and c["latency_ms"] >= 0 for c in steps["mod_calls"])
