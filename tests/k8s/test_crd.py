"""The QuoteModel CRD on a real API server: the schema refuses bad specs, fills defaults, prints columns."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from .operator_kit import GROUP, PLURAL, VERSION, Cluster

pytestmark = pytest.mark.k8s


def create(admin: kubernetes.client.ApiClient, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return Cluster(admin).create_model(namespace, "m", spec)


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"model": "x", "engine": "vllm"}, 'spec.engine: Unsupported value: "vllm"'),
        ({"model": "x", "runtime": "docker"}, 'spec.runtime: Unsupported value: "docker"'),
        ({"model": ""}, "spec.model: Invalid value"),
        ({"engine": "embedded"}, "spec.model: Required value"),
        ({"model": "x", "autoscaling": {"maxReplicas": 0}}, "spec.autoscaling.maxReplicas: Invalid value"),
        ({"model": "x", "resources": {"gpus": -1}}, "spec.resources.gpus: Invalid value"),
        ({"model": "x", "resources": {"memory": "lots"}}, "spec.resources.memory: Invalid value"),
        ({"model": "x", "access": {"isolation": "private"}}, "spec.access.isolation: Unsupported value"),
        ({"model": "x", "access": {"tenants": ["Not A Tenant"]}}, 'spec.access.tenants: Invalid value: "Not A Tenant"'),
        ({"model": "x", "access": {"tenants": ["a", "a"]}}, "spec.access.tenants[1]: Duplicate value"),
    ],
)
def test_schema_refuses_invalid_specs(
    admin: kubernetes.client.ApiClient, namespace: str, spec: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(kubernetes.client.ApiException) as refused:
        create(admin, namespace, spec)

    assert refused.value.status == 422
    assert complaint in json.loads(refused.value.body)["message"]


def test_schema_fills_defaults(admin: kubernetes.client.ApiClient, namespace: str) -> None:
    created = create(admin, namespace, {"model": "quote-tiny"})

    assert created["spec"] == {
        "model": "quote-tiny",
        "engine": "embedded",
        "runtime": "ray",
        "resources": {"gpus": 0, "cpu": "2", "memory": "8Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1, "targetOngoingRequests": 8},
        "access": {"tenants": ["*"], "mods": ["*"], "isolation": "shared"},
    }


def test_short_name_and_printer_columns(admin: kubernetes.client.ApiClient, namespace: str) -> None:
    create(admin, namespace, {"model": "quote-tiny"})
    crd = kubernetes.client.ApiextensionsV1Api(admin).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert crd.spec.names.short_names == ["qm"]

    table = kubernetes.client.CustomObjectsApi(admin).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    )

    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:4] == ["Name", "Model", "Engine", "Runtime"]
    assert {"Ready", "Replicas", "Endpoint", "Age"} <= set(columns)
    assert table["rows"][0]["cells"][:4] == ["m", "quote-tiny", "embedded", "ray"]
