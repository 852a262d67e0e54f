"""Registry errors, one tree; `api` maps each to an HTTP status in OpenAI's error shape.

RegistryError
 ├── NotFound            no such tenant/key/mod/version/alias — or not visible to the caller
 ├── Conflict            exists already with other content (versions are immutable)
 ├── Invalid             malformed input: bad semver, bad bundle, oversize, bad names
 ├── SignatureRejected   missing/bad signature, unknown or revoked signing key
 ├── Unauthorized        missing, unknown, expired or revoked API key
 └── Forbidden           the key lacks the scope for this operation
"""

from __future__ import annotations


class RegistryError(Exception):
    status_code = 400
    code = "registry_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class NotFound(RegistryError):
    status_code = 404
    code = "not_found"


class Conflict(RegistryError):
    status_code = 409
    code = "conflict"


class Invalid(RegistryError):
    status_code = 400
    code = "invalid"


class SignatureRejected(RegistryError):
    status_code = 400
    code = "signature_rejected"


class Unauthorized(RegistryError):
    status_code = 401
    code = "invalid_api_key"


class Forbidden(RegistryError):
    status_code = 403
    code = "insufficient_scope"
