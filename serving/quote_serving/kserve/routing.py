"""Putting Quote's OpenAI app into KServe's server: at the root (the platform's `/v1`), or under a prefix.

    request ─► KServe's FastAPI app ─► first route: OpenAIRoutes ─ a path the OpenAI app knows? ─► OpenAI app
                                                                └ else ─► KServe's own routes (/v2/health/*, /, ...)

At the root, the OpenAI app takes precedence for the paths it serves (`/v1/chat/completions`,
`/v1/models`, `/metrics`, `/healthz`, ...), which is where the gateway calls every serving backend;
KServe's V1 model routes (`/v1/models/<name>`) give way to OpenAI's of the same path, its V2 health
and the root liveness route stay. Under a prefix (KServe's own OpenAI convention, "/openai") both
protocols keep all their routes.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Receive, Scope, Send

__all__ = ["OpenAIRoutes", "install_openai_app"]


class OpenAIRoutes(BaseRoute):
    """A route of the host app matching exactly the requests some route of `app` matches."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and any(route.matches(scope)[0] != Match.NONE for route in self.app.router.routes):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: str) -> URLPath:
        return self.app.url_path_for(name, **path_params)


def install_openai_app(host: FastAPI, app: FastAPI, prefix: str) -> None:
    """Serve `app` inside `host` at `prefix` ("" or "/": the root, ahead of the host's own routes)."""
    prefix = prefix.strip("/")
    route: BaseRoute = Mount(f"/{prefix}", app=app) if prefix else OpenAIRoutes(app)
    host.router.routes.insert(0, route)
