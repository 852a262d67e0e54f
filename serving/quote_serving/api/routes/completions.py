"""POST /v1/completions."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from quote_serving.api.context import Ctx
from quote_serving.api.execution import first_news, run_to_end, stream_events, submit
from quote_serving.api.generation_request import build_completion_request
from quote_serving.api.render import completion, completion_chunk, finish_reason, now, usage
from quote_serving.api.schemas import CompletionRequest
from quote_serving.api.streaming import cursor_for
from quote_serving.runtime.requests import Snapshot

router = APIRouter(tags=["openai"])


@router.post("/v1/completions", response_model=None)
async def create_completion(body: CompletionRequest, ctx: Ctx, request: Request) -> Any:
    # Off the event loop: resolving a mod may ask the registry and load its bundle in a worker.
    built = await asyncio.to_thread(build_completion_request, ctx, body, getattr(request.state, "tenant", None))
    handle = submit(ctx, built)
    echo = ctx.tokenizer.decode(handle.request.prompt_tokens) if body.echo else ""
    if not body.stream:
        snapshot = await run_to_end(handle, request)
        return completion(handle.request_id, body.model, snapshot, ctx.tokenizer, now(), echo)
    cursor = cursor_for(ctx.tokenizer, handle.request)
    first = await first_news(handle, cursor)
    rid, created, model = handle.request_id, now(), body.model
    if echo:
        first = (first[0], echo + first[1])

    def on_end(snapshot: Snapshot) -> list[dict[str, Any]]:
        end = completion_chunk(rid, model, created, "", finish_reason(snapshot))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return [end, {**end, "choices": [], "usage": usage(snapshot)}] if include_usage else [end]

    events = stream_events(handle, cursor, first, lambda t: completion_chunk(rid, model, created, t, None), on_end)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
