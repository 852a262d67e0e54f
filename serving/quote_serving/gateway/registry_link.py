"""The gateway's calls to the registry, with its `service` key: key introspection and usage batches.

    KeyAuthenticator ─ introspect(key) ─► POST /v1/auth/introspect ─► {"active": …}
    UsageRecorder    ─ record(records) ─► POST /v1/usage          ─► stored, idempotent by request_id

Every transport failure, 5xx, or refusal of the gateway's own key becomes one exception per call
(`IntrospectionFailed`, `UsageWriteFailed`), translated here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import httpx

from quote_serving.gateway.keys import IntrospectionFailed

__all__ = ["RegistryLink", "UsageWriteFailed"]


class UsageWriteFailed(Exception):
    """The registry did not take a usage batch; it will be sent again."""


class RegistryLink:
    def __init__(self, url: str, service_key: str, *, timeout_s: float = 5.0) -> None:
        self._url, self._key, self._timeout = url.rstrip("/"), service_key, timeout_s
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        # Created on first use, inside the event loop that will use it.
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._url, headers={"Authorization": f"Bearer {self._key}"}, timeout=self._timeout
            )
        return self._http

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self._client().post(path, json=body)

    async def introspect(self, key: str) -> dict[str, Any]:
        try:
            response = await self._post("/v1/auth/introspect", {"key": key})
        except httpx.HTTPError as exc:
            raise IntrospectionFailed(f"{type(exc).__name__} calling {self._url}") from exc
        if response.status_code != 200:
            raise IntrospectionFailed(f"the registry answered {response.status_code} ({_message(response)})")
        answer: dict[str, Any] = response.json()
        return answer

    async def record_usage(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            response = await self._post("/v1/usage", {"records": records})
        except httpx.HTTPError as exc:
            raise UsageWriteFailed(f"{type(exc).__name__} calling {self._url}") from exc
        if response.status_code != 200:
            raise UsageWriteFailed(f"the registry answered {response.status_code} ({_message(response)})")
        result: dict[str, Any] = response.json()
        return result

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
