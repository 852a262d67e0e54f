"""The gateway's read side of the trace store and usage, plus the timeline page.

    tenant ── GET  /v1/traces, /v1/traces/{id} ──────┐
    tenant ── POST /v1/traces/{id}/share ────────────┼─► registry (the trace store), with the caller's key
    tenant ── GET  /v1/usage(?group_by=day) ─────────┤     which scopes every answer to its tenant
    tenant ── GET  /v1/traces/recent-errors ─────────┘     (errors and erasures per mod, for Grafana)
    anyone ── GET  /v1/traces/{id}?share=<token> ────────► registry, no key: the token names one trace
    anyone ── GET  /timeline ────────────────────────────► the static page; it calls the routes above

The caller's key already goes to the registry for introspection, so forwarding it adds no new
holder of it, and the registry, not the gateway, decides what a tenant may see (another tenant's
trace is the same 404 as a missing one). Replicas ship traces there; any of them may have served it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from quote_serving.api.errors import error_body
from quote_serving.api.routes import timeline

__all__ = ["install_trace_routes"]

_FORWARDED_QUERY = frozenset(
    {
        "mod",
        "model",
        "finish_reason",
        "error",
        "since",
        "until",
        "after",
        "limit",
        "share",
        "tenant",
        "group_by",
        "kind",
    }
)


class _Store:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self._http: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._http is None:  # inside the serving event loop
            self._http = httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s)
        return self._http

    async def forward(self, request: Request, method: str, path: str) -> tuple[int, Any]:
        headers = {}
        if auth := request.headers.get("authorization"):
            headers["Authorization"] = auth
        params = {k: v for k, v in request.query_params.items() if k in _FORWARDED_QUERY}
        try:
            reply = await self.client().request(method, path, params=params, headers=headers)
            return reply.status_code, reply.json()
        except (httpx.HTTPError, ValueError):
            return 503, error_body("The trace store is unavailable; try again shortly.", "server_error", None, None)


def install_trace_routes(app: FastAPI, store_url: str, *, timeout_s: float = 10.0) -> None:
    """Add the store-backed routes and the timeline page to a gateway app."""
    store = _Store(store_url, timeout_s)
    app.include_router(timeline.router)

    async def relay(request: Request, method: str, path: str) -> JSONResponse:
        status, body = await store.forward(request, method, path)
        return JSONResponse(body, status_code=status)

    @app.get("/v1/traces")
    async def list_traces(request: Request) -> JSONResponse:
        return await relay(request, "GET", "/v1/traces")

    @app.get("/v1/traces/recent-errors")  # before /v1/traces/{request_id}, which would take the path
    async def recent_errors(request: Request) -> JSONResponse:
        return await relay(request, "GET", "/v1/traces/recent-errors")

    @app.get("/v1/traces/{request_id}")
    async def get_trace(request_id: str, request: Request) -> JSONResponse:
        return await relay(request, "GET", f"/v1/traces/{quote(request_id, safe='')}")

    @app.post("/v1/traces/{request_id}/share")
    async def share_trace(request_id: str, request: Request) -> JSONResponse:
        status, body = await store.forward(request, "POST", f"/v1/traces/{quote(request_id, safe='')}/share")
        if status == 200 and isinstance(body, dict) and "token" in body:
            trace, token = quote(request_id, safe=""), quote(str(body["token"]), safe="")
            body["url"] = f"{request.base_url}timeline?trace={trace}&share={token}"
        return JSONResponse(body, status_code=status)

    @app.get("/v1/usage")
    async def usage(request: Request) -> JSONResponse:
        return await relay(request, "GET", "/v1/usage")
