"""Observability in the API: build it for an app, put its observers on the runtime, and give
routes typed access to it (`Obs`) and to the caller's tenant (`CallerTenant`).

    create_app ─► install_observability(app, ctx) ─► app.state.observability
                        ├► ctx.runtime.observers += [mod versions, metrics, spans]
                        └► TraceContextMiddleware (when tracing is on)

The tenant comes from `request.state.tenant`, which the gateway's authentication sets; the
embedded server has none, and then every trace is visible (development mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request
from quote_serving.api.context import ServingContext
from quote_serving.mods.store import LocalModStore, UnknownModError
from quote_serving.observability import Observability, TraceContextMiddleware
from quote_serving.runtime.observers import RuntimeObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from quote_serving.runtime.requests import RequestHandle

__all__ = ["CallerTenant", "Obs", "install_observability"]


class ModVersionObserver(RuntimeObserver):
    """Names the version of a request's mod when the local store's latest version is that very mod.

    Request builders do not carry the resolved version yet; a pinned older version stays unknown.
    Only for the in-memory `LocalModStore`: a registry lookup must not run on the event loop.
    """

    def __init__(self, store: LocalModStore) -> None:
        self.store = store

    def on_submitted(self, handle: RequestHandle) -> None:
        request = handle.request
        if request.mod is None or request.mod_version is not None:
            return
        try:
            latest = self.store.resolve(request.mod.name)
        except UnknownModError:
            return
        if latest.mod is request.mod:
            request.mod_version = latest.version


def install_observability(
    app: FastAPI, ctx: ServingContext, *, tracer_provider: TracerProvider | None = None
) -> Observability:
    obs = Observability.build(ctx.settings, model=ctx.model_name, tracer_provider=tracer_provider)
    first: list[RuntimeObserver] = []
    if obs.spans is not None and isinstance(ctx.mods, LocalModStore):
        first.append(ModVersionObserver(ctx.mods))
    obs.attach(ctx.runtime, first=first)
    if obs.spans is not None:
        app.add_middleware(TraceContextMiddleware)
    app.state.observability = obs
    return obs


def _observability(request: Request) -> Observability:
    obs: Observability = request.app.state.observability
    return obs


def _tenant(request: Request) -> str | None:
    tenant = getattr(request.state, "tenant", None)
    return None if tenant is None else str(tenant)


Obs = Annotated[Observability, Depends(_observability)]
CallerTenant = Annotated[str | None, Depends(_tenant)]
