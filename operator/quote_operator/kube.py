"""A thin, synchronous Kubernetes REST client: the few verbs the operator needs on the few kinds it touches.

Credentials come from the official client's loaders (in-cluster service account, else $KUBECONFIG), and
requests go through its `ApiClient`, so TLS, tokens and client certificates behave exactly as in
kubectl. Objects are plain dicts in and out. Every error answer becomes a `KubeError` subclass in
`_raise_for_status`, the only place that looks at HTTP statuses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3

from .errors import KubeError, NotFound, Unavailable, from_status

__all__ = [
    "CONFIG_MAP",
    "INFERENCE_SERVICE",
    "QUOTE_MODEL",
    "RAY_SERVICE",
    "SERVICE",
    "Kind",
    "Kube",
    "bearer_token",
    "load_configuration",
]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kind:
    """Where a kind lives in the API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str = "", subresource: str = "") -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        return "/".join(p for p in (path, name, subresource) if p)


QUOTE_MODEL = Kind("quote.dev", "v1alpha1", "quotemodels", "QuoteModel")
RAY_SERVICE = Kind("ray.io", "v1", "rayservices", "RayService")
INFERENCE_SERVICE = Kind("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
SERVICE = Kind("", "v1", "services", "Service")
CONFIG_MAP = Kind("", "v1", "configmaps", "ConfigMap")


class Kube:
    """The operator's API verbs; safe to share between kopf's handler threads."""

    def __init__(self, api: kubernetes.client.ApiClient, *, field_manager: str, timeout_s: float = 30.0) -> None:
        self._api = api
        self._field_manager = field_manager
        self._timeout_s = timeout_s

    @classmethod
    def from_environment(cls, *, field_manager: str) -> Kube:
        return cls(kubernetes.client.ApiClient(load_configuration()), field_manager=field_manager)

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist (or its kind is not served)."""
        try:
            return self._request("GET", kind.path(namespace, name), what=f"get {kind.kind} {namespace}/{name}")
        except NotFound:
            return None

    def list_by_labels(self, kind: Kind, namespace: str, *, labels: Mapping[str, str]) -> list[Obj]:
        """Objects carrying all `labels`; raises NotFound when the kind is not served."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = self._request(
            "GET", kind.path(namespace), query=[("labelSelector", selector)], what=f"list {kind.plural}"
        )
        return list((found or {}).get("items") or [])

    def apply(self, kind: Kind, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply: create or converge `obj`, owning exactly the fields it names."""
        meta = obj["metadata"]
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        applied = self._request(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            body=body,
            query=[("fieldManager", self._field_manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
            what=f"apply {kind.kind} {meta['namespace']}/{meta['name']}",
        )
        return applied or {}

    def create(self, kind: Kind, obj: Mapping[str, Any]) -> Obj:
        meta = obj["metadata"]
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        created = self._request(
            "POST",
            kind.path(meta["namespace"]),
            body=body,
            what=f"create {kind.kind} {meta['namespace']}/{meta['name']}",
        )
        return created or {}

    def merge_patch(
        self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any], *, subresource: str = ""
    ) -> Obj:
        """JSON merge patch; put `metadata.resourceVersion` in `patch` to make it conditional (409 if stale)."""
        patched = self._request(
            "PATCH",
            kind.path(namespace, name, subresource),
            body=dict(patch),
            content_type="application/merge-patch+json",
            what=f"patch {kind.kind} {namespace}/{name}{'/' + subresource if subresource else ''}",
        )
        return patched or {}

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            self._request(
                "DELETE",
                kind.path(namespace, name),
                body={"propagationPolicy": "Background"},
                what=f"delete {kind.kind} {namespace}/{name}",
            )
        except NotFound:
            return False
        return True

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> Obj | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self._api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self._timeout_s)
            data = response.read()  # type: ignore[no-untyped-call]  # the kubernetes client is untyped
        except kubernetes.client.ApiException as exc:  # the REST layer raises for some statuses itself
            raise from_status(exc.status or 0, exc.body, what=what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unavailable(f"{what}: {exc}") from exc
        _raise_for_status(response.status, data, what=what)
        return json.loads(data) if data else None


def load_configuration() -> kubernetes.client.Configuration:
    """$KUBECONFIG when set (read now, not at import), else the pod's service account, else ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    config_file = os.environ.get("KUBECONFIG") or None
    if config_file is None:
        try:
            # (type: ignore below: the kubernetes client is untyped)
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except kubernetes.config.ConfigException:
            pass
    # (type: ignore below: the kubernetes client is untyped)
    kubernetes.config.load_kube_config(config_file=config_file, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def bearer_token(configuration: kubernetes.client.Configuration) -> str | None:
    """The token the configuration authenticates with (refreshed first when it comes from a hook)."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    return header.split(" ", 1)[-1] if header else None


def _raise_for_status(status: int, data: bytes | None, *, what: str) -> None:
    if not 200 <= status < 300:
        error: KubeError = from_status(status, data, what=what)
        raise error
