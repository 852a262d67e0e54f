"""A small httpx client of the registry API, for the CLI, CI jobs and serving."""

from __future__ import annotations

from typing import Any

import httpx

from quote_mod_sdk.signing import KeyPair, sign_bundle

__all__ = ["RegistryClient", "RegistryClientError"]


class RegistryClientError(Exception):
    """The registry refused a call; `str()` is a one-line message fit for a terminal."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"registry error {status}: {message}")
        self.status, self.message, self.code = status, message, code


class RegistryClient:
    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # A pooled keep-alive connection the server closed as we reused it: a read is safe to send
                # again once, on a fresh connection; a write may have landed, so it is never resent.
                if method != "GET":
                    raise
                response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryClientError(0, f"cannot reach the registry at {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            self._raise(response)
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # mods
    def publish(
        self, name: str, version: str, bundle: dict[str, Any], *, key: KeyPair | None, visibility: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Sign (when a key is given) and publish; returns (version info, created)."""
        bundle = {**bundle, "name": name}
        body: dict[str, Any] = {"version": version, "bundle": bundle, "visibility": visibility}
        if key is not None:
            body["signature"] = sign_bundle(bundle, key).as_dict()
        response = self._request("POST", f"/v1/mods/{name}/versions", json=body)
        return response.json(), response.status_code == 201

    def _raise(self, response: httpx.Response) -> None:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise RegistryClientError(response.status_code, response.text[:200]) from None
        raise RegistryClientError(response.status_code, error["message"], error.get("code"))

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> dict[str, Any]:
        """`tenant` (service keys): resolve as that tenant sees mods (its own and public ones)."""
        params = {k: v for k, v in (("ref", ref), ("tenant", tenant)) if v}
        return dict(self._call("GET", f"/v1/mods/{name}/resolve", params=params or None))

    def list_mods(self, *, include_public: bool = False) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._call(
                "GET", "/v1/mods", params={"include_public": include_public, "after": after, "limit": 100}
            )
            items += page["data"]
            if not page["has_more"]:
                return items
            after = page["next_cursor"]

    def show(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/mods/{name}"))

    def yank(self, name: str, version: str, reason: str = "") -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/mods/{name}/versions/{version}/yank", json={"reason": reason}))

    def unyank(self, name: str, version: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/mods/{name}/versions/{version}/yank"))

    def alias(self, name: str, alias: str, version: str) -> dict[str, Any]:
        return dict(self._call("PUT", f"/v1/mods/{name}/aliases/{alias}", json={"version": version}))

    def set_visibility(self, name: str, visibility: str) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/v1/mods/{name}", json={"visibility": visibility}))

    # tenants and keys
    def create_tenant(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/tenants", json={"name": name}))

    def list_tenants(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/tenants")["data"])

    def create_key(
        self,
        *,
        scopes: list[str],
        name: str = "",
        tenant: str | None = None,
        limits: dict[str, int] | None = None,
        acts_for: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"scopes": scopes, "name": name, "tenant": tenant}
        if limits is not None:
            body["limits"] = limits
        if acts_for is not None:
            body["acts_for"] = acts_for
        return dict(self._call("POST", "/v1/keys", json=body))

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/keys")["data"])

    def revoke_key(self, prefix: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/keys/{prefix}"))

    def set_key_limits(self, prefix: str, **limits: int | None) -> dict[str, Any]:
        """Admin: requests_per_minute, tokens_per_minute, max_concurrent (None: the gateway's default)."""
        return dict(self._call("PATCH", f"/v1/keys/{prefix}", json={"limits": limits}))

    # usage (gateways write it, tenants and admins read it)
    def introspect(self, key: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/auth/introspect", json={"key": key}))

    def record_usage(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/usage", json={"records": records}))

    def usage(self, *, tenant: str | None = None, per_day: bool = False) -> list[dict[str, Any]]:
        """Usage totals by tenant, key, model and mod (and UTC `day` with per_day)."""
        params = {k: v for k, v in (("tenant", tenant), ("group_by", "day" if per_day else None)) if v}
        return list(self._call("GET", "/v1/usage", params=params or None)["data"])

    def add_signing_key(self, public_key: str, name: str = "") -> dict[str, Any]:
        return dict(self._call("POST", "/v1/signing-keys", json={"public_key": public_key, "name": name}))

    def list_signing_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/signing-keys")["data"])

    def revoke_signing_key(self, key_id: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/v1/signing-keys/{key_id}"))

    def audit(self, after: int = 0) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/audit", params={"after": after})["data"])
