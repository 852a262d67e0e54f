"""Observability in the API: build it for an app, put its observers on the runtime, and give
routes typed access to it (`Obs`) and to the caller's tenant (`CallerTenant`).

    create_app ─► install_observability(app, ctx) ─► app.state.observability
                        ├► ctx.runtime.observers += [metrics, spans]
                        └► TraceContextMiddleware (when tracing is on)

The tenant comes from `request.state.tenant`, which the gateway's authentication sets; the
embedded server has none, and then every trace is visible (development mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request

from quote_serving.api.context import ServingContext
from quote_serving.observability import Observability, TraceContextMiddleware

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["CallerTenant", "Obs", "install_observability"]


def install_observability(
    app: FastAPI, ctx: ServingContext, *, tracer_provider: TracerProvider | None = None
) -> Observability:
    obs = Observability.build(ctx.settings, model=ctx.model_name, tracer_provider=tracer_provider)
    obs.attach(ctx.runtime)
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
