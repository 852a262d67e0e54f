"""/v1/traces: recent requests, one request's timeline data, and links that share one trace.

Who may read a trace: the tenant that made the request (`request.state.tenant`, set by the
gateway; without one — the embedded development server — every trace is visible), or anyone
holding a share token for exactly that trace (`?share=`, issued by `POST .../share`). Another
tenant's trace is a 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from quote_serving.api.context import Ctx
from quote_serving.api.errors import NotFoundError, QuoteAPIError
from quote_serving.api.observability import CallerTenant, Obs
from quote_serving.observability import token_counts
from quote_serving.runtime.traces import StoredTrace, trace_to_json

router = APIRouter(tags=["traces"])


class PermissionDeniedError(QuoteAPIError):
    """A share token is invalid, expired, issued for another trace, or sharing is off."""

    status_code = 403
    error_type = "permission_error"


def _summary(stored: StoredTrace) -> dict[str, Any]:
    counts = token_counts(stored.trace)
    return {
        "id": stored.trace.request_id,
        "model": stored.model,
        "mod": stored.trace.mod,
        "created": int(stored.created),
        "finish_reason": stored.trace.finish_reason,
        "error": stored.trace.error is not None,
        "usage": {"prompt_tokens": counts.prompt, "completion_tokens": counts.completion},
        "forced_tokens": counts.forced,
        "erased_tokens": counts.erased,
    }


def _visible(ctx: Ctx, request_id: str, tenant: str | None) -> StoredTrace:
    stored = ctx.runtime.traces.get(request_id)
    if stored is None or (tenant is not None and stored.tenant != tenant):
        raise NotFoundError(f"No trace for request '{request_id}' (unknown, or evicted)", param="request_id")
    return stored


def _shared(ctx: Ctx, obs: Obs, request_id: str, token: str) -> StoredTrace:
    if obs.share is None or not obs.share.verify(request_id, token):
        raise PermissionDeniedError(
            "This share link is invalid or has expired; ask for a new one.", param="share", code="invalid_share_token"
        )
    return _visible(ctx, request_id, tenant=None)


@router.get("/v1/traces")
async def list_traces(ctx: Ctx, tenant: CallerTenant, limit: int = 50) -> dict[str, Any]:
    items = ctx.runtime.traces.recent(tenant=tenant, limit=max(1, min(limit, 500)))
    return {"object": "list", "data": [_summary(s) for s in items]}


@router.get("/v1/traces/{request_id}")
async def get_trace(
    request_id: str, ctx: Ctx, obs: Obs, tenant: CallerTenant, share: str | None = None
) -> dict[str, Any]:
    stored = _shared(ctx, obs, request_id, share) if share else _visible(ctx, request_id, tenant)
    return trace_to_json(stored, ctx.tokenizer)


@router.post("/v1/traces/{request_id}/share")
async def share_trace(request_id: str, ctx: Ctx, obs: Obs, tenant: CallerTenant, request: Request) -> dict[str, Any]:
    _visible(ctx, request_id, tenant)
    if obs.share is None:
        raise PermissionDeniedError("Trace sharing is off on this server: set QUOTE_SHARE_SECRET.", code="sharing_off")
    grant = obs.share.issue(request_id)
    url = f"{request.base_url}timeline?trace={request_id}&share={grant.token}"
    return {"object": "trace.share", "id": request_id, "token": grant.token, "url": url, "expires_at": grant.expires_at}
