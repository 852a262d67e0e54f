"""GET /timeline: the token-timeline page (plain HTML + JS shipped as package data, no build step).

The page is static; everything it shows comes from the API with the caller's own credentials
(`/v1/traces`, `/v1/models`, `/v1/chat/completions`), or from a share token in its URL.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from quote_serving.api.errors import NotFoundError

router = APIRouter(tags=["observability"])

_ASSETS = {
    "timeline.js": "text/javascript; charset=utf-8",
    "timeline.css": "text/css; charset=utf-8",
}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# The page renders model output (always as text) and may carry a share token in its URL:
# only our own scripts run, and the token never leaves in a Referer header.
_PAGE_HEADERS = {
    **_HEADERS,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


@cache
def _read(name: str) -> bytes:
    return (resources.files("quote_serving.observability") / "static" / name).read_bytes()


@router.get("/timeline", include_in_schema=False)
async def timeline_page() -> Response:
    return Response(_read("timeline.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/timeline/{asset}", include_in_schema=False)
async def timeline_asset(asset: str) -> Response:
    if asset not in _ASSETS:
        raise NotFoundError(f"No timeline asset '{asset}'.")
    return Response(_read(asset), media_type=_ASSETS[asset], headers=_HEADERS)
