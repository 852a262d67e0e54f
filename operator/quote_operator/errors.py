"""Errors of the QuoteModel operator, and the one place HTTP statuses become exceptions.

    QuoteOperatorError
    ├── InvalidSpec        the QuoteModel asks for something impossible: the user edits the spec
    ├── NameTaken          a child's name, or the served model name, belongs to someone else
    ├── RuntimeMissing     the cluster does not serve the runtime's kind (KubeRay or KServe not installed)
    └── KubeError          an API call failed
        ├── NotFound       404: the object, or the whole kind (its CRD is not installed)
        ├── Conflict       409: a stale resourceVersion or an existing name
        ├── Forbidden      403: the operator's RBAC lacks a verb
        ├── Invalid        422: the API server rejected the object we built
        └── Unavailable    5xx, 429 or no connection: try again later

`handlers.py` maps these to kopf's user-facing errors: `InvalidSpec` is permanent (retrying cannot
help until the spec changes), everything else is temporary with backoff. Nothing here imports kopf.
"""

from __future__ import annotations

import json

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "InvalidSpec",
    "KubeError",
    "NameTaken",
    "NotFound",
    "QuoteOperatorError",
    "RuntimeMissing",
    "Unavailable",
    "from_status",
]


class QuoteOperatorError(Exception):
    """Base of every error the operator raises on purpose."""

    reason = "Error"


class InvalidSpec(QuoteOperatorError):
    """Raised when a QuoteModel's spec passes the schema but cannot be served as written."""

    reason = "InvalidSpec"


class NameTaken(QuoteOperatorError):
    """Raised when a child object or the served model name is already used by something we do not own."""

    reason = "NameTaken"


class RuntimeMissing(QuoteOperatorError):
    """Raised when the RayService or InferenceService kind is not served: its operator is not installed."""

    reason = "RuntimeMissing"


class KubeError(QuoteOperatorError):
    """Raised when the API server answers an error; `status` is its HTTP status (0: no answer)."""

    reason = "APIError"

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    """Raised on 404: the object is gone, or its kind is not served (CRD missing)."""

    reason = "NotFound"


class Conflict(KubeError):
    """Raised on 409: someone changed the object since we read it, or it already exists."""

    reason = "Conflict"


class Forbidden(KubeError):
    """Raised on 403: the operator's service account may not do this."""

    reason = "Forbidden"


class Invalid(KubeError):
    """Raised on 422: the API server refused an object the operator built (a bug, or a too-old CRD)."""

    reason = "Invalid"


class Unavailable(KubeError):
    """Raised on 5xx, 429 or a connection failure: the API server may answer later."""

    reason = "Unavailable"


_BY_STATUS: dict[int, type[KubeError]] = {403: Forbidden, 404: NotFound, 409: Conflict, 422: Invalid}


def from_status(status: int, body: bytes | str | None, *, what: str) -> KubeError:
    """Build the exception for an HTTP error `status`, keeping the API server's own message."""
    message = _server_message(body) or f"HTTP {status}"
    cls = _BY_STATUS.get(status, Unavailable if status in (0, 429) or status >= 500 else KubeError)
    return cls(f"{what}: {message}", status=status)


def _server_message(body: bytes | str | None) -> str:
    if not body:
        return ""
    try:
        decoded = json.loads(body)
    except ValueError:
        return (body.decode(errors="replace") if isinstance(body, bytes) else body)[:500]
    return str(decoded.get("message", "")) if isinstance(decoded, dict) else ""
