"""Issue 13: every pod that runs Quote code is confined: non-root, RuntimeDefault seccomp, no privilege
escalation, no capabilities, a read-only root with writable emptyDirs, from the chart and the operator alike;
and a real kube-apiserver accepts those pods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.dynamic import DynamicClient

from quote_operator import parse
from quote_operator.render import Owner, children
from quote_operator.settings import OperatorSettings

from .chart_kit import EVERYTHING_ON, documents, helm_template

OWNER = Owner("m", "ns", "uid-1", 1)
QUOTE_IMAGE = "ghcr.io/quote-dev/quote"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def _chart_pods(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in POD_KINDS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _assert_confined_container(where: str, container: dict[str, Any], *, read_only: bool = True) -> None:
    context = container.get("securityContext", {})
    assert context.get("allowPrivilegeEscalation") is False, where
    assert context.get("capabilities", {}).get("drop") == ["ALL"], where
    if read_only:
        assert context.get("readOnlyRootFilesystem") is True, where


def _assert_confined_pod(where: str, pod: dict[str, Any]) -> None:
    context = pod.get("securityContext", {})
    assert context.get("runAsNonRoot") is True, where
    assert context.get("seccompProfile") == {"type": "RuntimeDefault"}, where


# ----- the chart ----------------------------------------------------------------------------------


@pytest.mark.k8s
def test_every_chart_pod_is_confined(helm: str) -> None:
    docs = documents(helm_template(helm, namespace="quote-system", sets=EVERYTHING_ON))
    pods = dict(_chart_pods(docs))
    assert {"Deployment/quote-gateway", "Deployment/quote-registry", "Deployment/quote-operator"} <= set(pods)

    for where, pod in pods.items():
        _assert_confined_pod(where, pod)
        for container in _containers(pod):
            ours = container["image"].startswith(QUOTE_IMAGE)
            _assert_confined_container(f"{where}/{container['name']}", container, read_only=ours)
            if ours:  # a read-only root: what it writes goes to a mounted emptyDir
                assert {"name": "tmp", "mountPath": "/tmp"} in container.get("volumeMounts", []), where
                assert pod["securityContext"]["runAsUser"] == 1000  # the image's user, owner of the baked models


@pytest.mark.k8s
def test_the_kserve_runtime_container_carries_the_pod_settings_it_can(helm: str) -> None:
    docs = documents(helm_template(helm, namespace="quote-system", sets=["kserve.servingRuntime.enabled=true"]))

    [runtime] = [d for d in docs if d["kind"] == "ClusterServingRuntime"]
    [container] = runtime["spec"]["containers"]
    _assert_confined_container("ClusterServingRuntime/quote", container)
    _assert_confined_pod("ClusterServingRuntime/quote", container)  # no pod securityContext in a runtime
    assert "fsGroup" not in container["securityContext"]  # a pod-only field
    volumes = {v["name"] for v in runtime["spec"]["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.k8s
def test_chart_security_context_comes_from_values(helm: str) -> None:
    sets = [
        "securityContext.pod.runAsUser=4242",
        "securityContext.container.readOnlyRootFilesystem=false",
        "kserve.servingRuntime.enabled=true",
    ]
    docs = documents(helm_template(helm, namespace="quote-system", sets=sets))

    for where, pod in _chart_pods(docs):
        if pod["containers"][0]["image"].startswith(QUOTE_IMAGE):
            assert pod["securityContext"]["runAsUser"] == 4242, where
            assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False, where
    [runtime] = [d for d in docs if d["kind"] == "ClusterServingRuntime"]
    assert runtime["spec"]["containers"][0]["securityContext"]["runAsUser"] == 4242


@pytest.mark.k8s
def test_chart_refuses_an_unknown_seccomp_profile(helm: str) -> None:
    with pytest.raises(AssertionError) as refused:
        helm_template(helm, namespace="quote-system", sets=["securityContext.pod.seccompProfile.type=Lax"])

    assert "securityContext.pod.seccompProfile.type" in str(refused.value)


# ----- the operator's serving pods ----------------------------------------------------------------


def _rendered_pods(model: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod a QuoteModel's children make, as KubeRay / KServe would build them."""
    out: list[tuple[str, dict[str, Any]]] = []
    for child in children(parse("m", "ns", model), OWNER, OperatorSettings()):
        spec = child.manifest["spec"]
        if child.kind.kind == "RayService":
            cluster = spec["rayClusterConfig"]
            out.append((f"{child.name}/head", cluster["headGroupSpec"]["template"]["spec"]))
            out += [(f"{child.name}/{g['groupName']}", g["template"]["spec"]) for g in cluster["workerGroupSpecs"]]
        elif child.kind.kind == "InferenceService":
            predictor = spec["predictor"]
            container = {"name": "kserve-container", "image": QUOTE_IMAGE, **predictor["model"]}
            for field in ("modelFormat", "runtime", "storageUri"):
                container.pop(field, None)
            pod = {k: predictor[k] for k in ("securityContext", "volumes")}
            out.append((f"{child.name}/predictor", {**pod, "containers": [container]}))
    return out


MODELS = {
    "ray-cpu": {"model": "Qwen/Qwen2.5-0.5B-Instruct"},
    "ray-gpu": {"model": "Qwen/Qwen2.5-0.5B-Instruct", "engine": "sglang", "resources": {"gpus": 1}},
    "kserve": {"model": "Qwen/Qwen2.5-0.5B-Instruct", "runtime": "kserve"},
    "kserve-uri": {"model": "s3://bucket/model", "runtime": "kserve"},
}


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_operator_serving_pods_are_confined(model: dict[str, Any]) -> None:
    pods = _rendered_pods(model)
    assert pods
    gpu = bool(model.get("resources"))
    for where, pod in pods:
        _assert_confined_pod(where, pod)
        assert pod["securityContext"]["runAsUser"] == 1000, where
        volumes = {v["name"] for v in pod["volumes"]}
        for container in pod["containers"]:
            _assert_confined_container(where, container, read_only=not gpu)
            assert container["securityContext"]["readOnlyRootFilesystem"] is not gpu, where
            assert {m["name"] for m in container["volumeMounts"]} <= volumes, where
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}, where


def test_kuberays_autoscaler_sidecar_gets_no_privileges() -> None:
    [ray, _] = children(parse("m", "ns", MODELS["ray-cpu"]), OWNER, OperatorSettings())
    sidecar = ray.manifest["spec"]["rayClusterConfig"]["autoscalerOptions"]["securityContext"]
    _assert_confined_container("autoscaler", {"securityContext": sidecar}, read_only=False)


@pytest.mark.k8s
@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_the_api_server_accepts_the_operators_serving_pods(
    admin: kubernetes.client.ApiClient, namespace: str, model: dict[str, Any]
) -> None:
    pods = DynamicClient(admin).resources.get(api_version="v1", kind="Pod")
    for where, pod in _rendered_pods(model):
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "quote-"}, "spec": pod}
        created = pods.create(body=body, namespace=namespace, dry_run="All")
        context = created.spec.securityContext
        assert (context.runAsNonRoot, context.seccompProfile.type) == (True, "RuntimeDefault"), where
        assert created.spec.containers[0].securityContext.capabilities.drop == ["ALL"], where
