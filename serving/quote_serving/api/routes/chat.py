"""POST /v1/chat/completions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from quote_serving.api.context import Ctx, ServingContext
from quote_serving.api.execution import first_news, run_to_end, sse, stream_events, submit
from quote_serving.api.generation_request import build_chat_request
from quote_serving.api.render import chat_chunk, chat_completion, finish_reason, now, tool_call_deltas, usage
from quote_serving.api.schemas import ChatCompletionRequest
from quote_serving.api.streaming import cursor_for
from quote_serving.runtime.requests import RequestHandle, Snapshot

router = APIRouter(tags=["openai"])


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(body: ChatCompletionRequest, ctx: Ctx, request: Request) -> Any:
    # Off the event loop: resolving a mod may ask the registry and load its bundle in a worker.
    built = await asyncio.to_thread(build_chat_request, ctx, body, getattr(request.state, "tenant", None))
    handle = submit(ctx, built)
    if body.stream:
        return await _stream(ctx, body, handle)
    snapshot = await run_to_end(handle, request)
    return chat_completion(handle.request_id, body.model, snapshot, ctx.tokenizer, now())


async def _stream(ctx: ServingContext, body: ChatCompletionRequest, handle: RequestHandle) -> StreamingResponse:
    cursor = cursor_for(ctx.tokenizer, handle.request)
    first = await first_news(handle, cursor)
    rid, created, model = handle.request_id, now(), body.model
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def on_text(text: str) -> dict[str, Any]:
        return chat_chunk(rid, model, created, {"content": text})

    def on_end(snapshot: Snapshot) -> list[dict[str, Any]]:
        chunks = []
        if snapshot.tool_calls:
            chunks.append(chat_chunk(rid, model, created, {"tool_calls": tool_call_deltas(snapshot.tool_calls)}))
        chunks.append(chat_chunk(rid, model, created, {}, finish_reason(snapshot)))
        if include_usage:
            chunks.append({**chat_chunk(rid, model, created, {}), "choices": [], "usage": usage(snapshot)})
        return chunks

    async def events() -> AsyncIterator[str]:
        yield sse(chat_chunk(rid, model, created, {"role": "assistant", "content": ""}))
        async for event in stream_events(handle, cursor, first, on_text, on_end):
            yield event

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
