"""The registry application: wiring only (routers, error handlers, body limit, bootstrap)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from quote_registry.api.deps import RegistryState
from quote_registry.api.routes import gateway, keys, mods, tenants, traces
from quote_registry.db import make_engine, make_sessionmaker, transaction
from quote_registry.errors import RegistryError
from quote_registry.retention import install_retention
from quote_registry.services.tenants import bootstrap_admin
from quote_registry.settings import RegistrySettings
from quote_serving.api.app import BodyLimit
from quote_serving.api.errors import error_body, install_error_handlers

logger = logging.getLogger(__name__)


async def _registry_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    if exc.status_code == 401:
        kind = "authentication_error"
    elif exc.status_code == 403:
        kind = "permission_error"
    return JSONResponse(error_body(exc.message, kind, exc.param, exc.code), status_code=exc.status_code)


def create_registry_app(settings: RegistrySettings) -> FastAPI:
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    if settings.bootstrap_admin_key:
        with transaction(sessions) as session:
            if bootstrap_admin(session, raw_key=settings.bootstrap_admin_key):
                logger.info("bootstrapped the admin tenant from QUOTE_REGISTRY_BOOTSTRAP_ADMIN_KEY")
    app = FastAPI(title="Quote registry", version="0.1.0")
    app.state.registry = RegistryState(sessions, settings)
    install_error_handlers(app)
    app.add_exception_handler(RegistryError, _registry_error)
    for module in (tenants, keys, mods, gateway, traces):
        app.include_router(module.router)
    install_retention(app, sessions, settings)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, limit=settings.max_bundle_bytes * 2 + 65536)
    return app
