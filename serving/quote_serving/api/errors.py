"""API errors in OpenAI's shape, and the one place that installs their handlers.

Every error a client can cause is a `QuoteAPIError` subclass with its HTTP status; the
handlers below render any of them — and FastAPI's validation errors, and anything unexpected —
as `{"error": {"message", "type", "param", "code"}}`. No traceback ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "BadRequestError",
    "ForbiddenError",
    "ModRequestError",
    "NotFoundError",
    "QuoteAPIError",
    "UpstreamError",
    "error_body",
    "install_error_handlers",
]

logger = logging.getLogger(__name__)


class QuoteAPIError(Exception):
    """Base of errors rendered to clients; subclasses fix the status and type."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequestError(QuoteAPIError):
    """The request body or its parameters are invalid."""

    status_code = 400
    error_type = "invalid_request_error"


class NotFoundError(QuoteAPIError):
    """The model, mod, trace or route does not exist (or is not visible to the caller)."""

    status_code = 404
    error_type = "invalid_request_error"


class ModRequestError(QuoteAPIError):
    """The request's mod failed (raised, timed out, returned an invalid action, emitted an error)."""

    status_code = 422
    error_type = "mod_error"


class ForbiddenError(QuoteAPIError):
    """The caller may not use this (e.g. a mod whose signature is not trusted)."""

    status_code = 403
    error_type = "permission_error"


class UpstreamError(QuoteAPIError):
    """A service this server depends on (the registry) failed or is unreachable."""

    status_code = 502
    error_type = "server_error"


class PayloadTooLargeError(QuoteAPIError):
    status_code = 413
    error_type = "invalid_request_error"


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


async def _quote_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuoteAPIError)
    return _respond(exc.status_code, error_body(exc.message, exc.error_type, exc.param, exc.code))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        message, param = "We could not parse the JSON body of your request.", None
    elif param:
        message = f"Invalid value for '{param}': {message}"
    return _respond(400, error_body(message, "invalid_request_error", param, first.get("type")))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    return _respond(exc.status_code, error_body(message, error_type), getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _respond(500, error_body("The server had an error while processing your request.", "server_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(QuoteAPIError, _quote_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
