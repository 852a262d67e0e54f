"""Who may read `/metrics`: the one rule shared by `quote serve` and `quote gateway`.

Metrics name tenants and mods, so outside development they are not for everyone. With a token
configured (`QUOTE_METRICS_TOKEN`, `QUOTE_GATEWAY_METRICS_TOKEN`) a scrape must send
`Authorization: Bearer <token>`, as Prometheus does with `authorization.credentials_file` or a
ServiceMonitor's `bearerTokenSecret`; anything else is a 401 in OpenAI's error shape.
"""

from __future__ import annotations

import hmac

from quote_serving.api.errors import QuoteAPIError

__all__ = ["MetricsAuthError", "check_metrics_access"]


class MetricsAuthError(QuoteAPIError):
    """A scrape without the configured bearer token."""

    status_code = 401
    error_type = "invalid_request_error"


def check_metrics_access(authorization: str | None, token: str | None) -> None:
    """Raise MetricsAuthError unless `token` is unset or `authorization` is exactly its bearer form."""
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return
    raise MetricsAuthError("GET /metrics needs the metrics bearer token.", code="metrics_token_required")
