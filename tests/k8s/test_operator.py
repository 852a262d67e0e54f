"""The operator against a real kube-apiserver: QuoteModel in, RayService/InferenceService + Service + route out.

KubeRay and KServe do not run here (their CRDs do, as fixtures): where a test needs a runtime to report
readiness, it writes the status that runtime would write, and nothing else is faked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml
from kopf.testing import KopfRunner

from .apiserver import ADMIN, ApiServer
from .kit import INFERENCE_SERVICE_CRD, REPO, eventually, install_crds, uninstall_crd
from .operator_kit import Cluster, kubectl_apply, running_operator

pytestmark = pytest.mark.k8s

EXAMPLE = REPO / "examples" / "quotemodel.yaml"


def small(namespace: str, name: str = "m", **overrides: Any) -> dict[str, Any]:
    """A CPU-sized spec whose served model name is unique to the test (the operator refuses duplicates)."""
    spec = {
        "model": "quote-tiny",
        "servedModelName": f"{namespace}/{name}",
        "engine": "embedded",
        "resources": {"cpu": "1", "memory": "2Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
    }
    return {**spec, **overrides}


@pytest.fixture(scope="module")
def operator(apiserver: ApiServer, admin: kubernetes.client.ApiClient) -> Iterator[KopfRunner]:
    with running_operator(apiserver, user=ADMIN) as runner:
        yield runner
        Cluster(admin).delete_all_models()  # while the operator runs, so finalizers are honoured


@pytest.fixture
def kserve(admin: kubernetes.client.ApiClient) -> None:
    """KServe's InferenceService kind is served."""
    install_crds(admin, [INFERENCE_SERVICE_CRD])


@pytest.fixture
def no_kserve(admin: kubernetes.client.ApiClient) -> None:
    """KServe's InferenceService kind is not served."""
    uninstall_crd(admin, INFERENCE_SERVICE_CRD)


@pytest.fixture
def cluster(admin: kubernetes.client.ApiClient, operator: KopfRunner) -> Cluster:
    return Cluster(admin)


def serve_args(rayservice: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    [app] = config["applications"]
    assert app["import_path"] == "quote_serving.ray_serve.app:app_builder"
    return dict(app["args"])


def test_example_becomes_rayservice_service_and_route(
    cluster: Cluster, namespace: str, kubectl: str | None, apiserver: ApiServer, admin: kubernetes.client.ApiClient
) -> None:
    kubectl_apply(kubectl, admin, apiserver.kubeconfig(), EXAMPLE, namespace)

    rayservice = eventually(lambda: cluster.rayservice(namespace, "qwen-7b"), what="RayService created")
    assert serve_args(rayservice) == {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "served_model_name": "Qwen/Qwen2.5-7B-Instruct",
        "engine": "embedded",
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 16,
        "num_cpus": 8.0,
        "num_gpus": 1,
    }
    [workers] = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (1, 4)
    assert "replicas" not in workers  # Ray's autoscaler owns it
    worker = workers["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1 and worker["image"].endswith("-cuda")
    model = cluster.model(namespace, "qwen-7b")
    assert model is not None
    [owner] = rayservice["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("QuoteModel", model["metadata"]["uid"], True)

    service = eventually(lambda: cluster.service(namespace, "qwen-7b"), what="Service created")
    assert service["spec"]["selector"]["ray.io/serve"] == "true"
    assert service["spec"]["ports"][0]["port"] == 8000
    assert service["metadata"]["owner_references"][0]["uid"] == model["metadata"]["uid"]

    route = eventually(lambda: cluster.route(namespace, "qwen-7b"), what="route entry written")
    endpoint = f"http://qwen-7b.{namespace}.svc.cluster.local:8000/v1"
    assert route["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert route["endpoints"] == {"*": endpoint}
    assert (route["tenants"], route["mods"], route["isolation"], route["ready"]) == (
        ["acme", "globex"],
        ["*"],
        "shared",
        False,
    )

    cluster.wait_condition(namespace, "qwen-7b", "Progressing", "True")
    status = cluster.model(namespace, "qwen-7b")["status"]  # type: ignore[index]
    assert status["endpoint"] == endpoint
    assert status["observedGeneration"] == 1
    assert cluster.condition(namespace, "qwen-7b", "Ready")["status"] == "False"  # type: ignore[index]


def test_runtime_reporting_running_makes_the_model_ready(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "m", small(namespace))
    eventually(lambda: cluster.rayservice(namespace, "m"), what="RayService created")

    cluster.set_rayservice_status(
        namespace,
        "m",
        {"serviceStatus": "Running", "activeServiceStatus": {"rayClusterStatus": {"readyWorkerReplicas": 2}}},
    )

    ready = cluster.wait_condition(namespace, "m", "Ready", "True")
    assert ready["reason"] == "Serving"
    assert cluster.model(namespace, "m")["status"]["replicas"] == 2  # type: ignore[index]
    assert cluster.condition(namespace, "m", "Progressing")["status"] == "False"  # type: ignore[index]
    eventually(lambda: (cluster.route(namespace, "m") or {}).get("ready"), what="route marked ready")


def test_updating_replicas_updates_the_rayservice(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "m", small(namespace))
    eventually(lambda: cluster.rayservice(namespace, "m"), what="RayService created")

    cluster.patch_model(
        namespace, "m", {"autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetOngoingRequests": 3}}
    )

    def updated() -> dict[str, Any] | None:
        found = cluster.rayservice(namespace, "m")
        return found if found and serve_args(found)["max_replicas"] == 6 else None

    rayservice = eventually(updated, what="RayService updated to 6 replicas")
    args = serve_args(rayservice)
    assert (args["min_replicas"], args["max_replicas"], args["target_ongoing_requests"]) == (2, 6, 3)
    [workers] = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (2, 6)
    eventually(
        lambda: cluster.model(namespace, "m")["status"].get("observedGeneration") == 2, what="generation 2 observed"
    )  # type: ignore[index]


def test_impossible_spec_is_degraded_until_fixed(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "m", small(namespace, autoscaling={"minReplicas": 5, "maxReplicas": 2}))

    degraded = cluster.wait_condition(namespace, "m", "Degraded", "True")
    assert degraded["reason"] == "InvalidSpec"
    assert "minReplicas (5) is above maxReplicas (2)" in degraded["message"]
    assert cluster.condition(namespace, "m", "Ready")["status"] == "False"  # type: ignore[index]
    assert cluster.rayservice(namespace, "m") is None
    assert cluster.route(namespace, "m") is None

    cluster.patch_model(namespace, "m", {"autoscaling": {"maxReplicas": 5}})

    cluster.wait_condition(namespace, "m", "Degraded", "False")
    assert cluster.rayservice(namespace, "m") is not None


def test_sglang_model_gets_one_gpu_per_replica_on_the_cuda_image(cluster: Cluster, namespace: str) -> None:
    from quote_serving.ray_serve.args import QuoteAppArgs

    resources = {"cpu": "1", "memory": "2Gi", "gpus": 2}
    cluster.create_model(namespace, "m", small(namespace, engine="sglang", resources=resources))

    degraded = cluster.wait_condition(namespace, "m", "Degraded", "True")
    assert degraded["reason"] == "InvalidSpec" and "set resources.gpus to 1" in degraded["message"]
    assert cluster.rayservice(namespace, "m") is None

    cluster.patch_model(namespace, "m", {"resources": {"gpus": 1}})

    rayservice = eventually(lambda: cluster.rayservice(namespace, "m"), what="RayService created")
    args = QuoteAppArgs.model_validate(serve_args(rayservice))  # what the operator writes, the app accepts
    assert (args.engine, args.num_gpus) == ("sglang", 1)
    assert args.engine_options()["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1}
    [workers] = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    worker = workers["template"]["spec"]["containers"][0]
    assert worker["image"].endswith("-cuda") and worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["QUOTE_ENGINE"] == "sglang"
    cluster.wait_condition(namespace, "m", "Degraded", "False")


def test_delete_removes_children_and_route(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "m", small(namespace))
    eventually(lambda: cluster.route(namespace, "m"), what="route entry written")
    assert cluster.rayservice(namespace, "m") and cluster.service(namespace, "m")

    cluster.delete_model(namespace, "m")

    cluster.wait_gone(namespace, "m")
    assert cluster.rayservice(namespace, "m") is None
    assert cluster.service(namespace, "m") is None
    assert cluster.route(namespace, "m") is None


def test_missing_runtime_is_degraded_until_installed(
    cluster: Cluster, namespace: str, admin: kubernetes.client.ApiClient, no_kserve: None
) -> None:
    cluster.create_model(namespace, "m", small(namespace, runtime="kserve"))

    degraded = cluster.wait_condition(namespace, "m", "Degraded", "True")
    assert degraded["reason"] == "RuntimeMissing" and "install KServe" in degraded["message"]
    assert cluster.condition(namespace, "m", "Progressing")["reason"] == "Retrying"  # type: ignore[index]

    install_crds(admin, [INFERENCE_SERVICE_CRD])

    cluster.wait_condition(namespace, "m", "Degraded", "False")
    assert cluster.inferenceservice(namespace, "m") is not None


def test_kserve_runtime_replaces_the_rayservice(cluster: Cluster, namespace: str, kserve: None) -> None:
    cluster.create_model(namespace, "m", small(namespace))
    eventually(lambda: cluster.rayservice(namespace, "m"), what="RayService created")

    cluster.patch_model(namespace, "m", {"runtime": "kserve", "model": "s3://bucket/tiny"})

    isvc = eventually(lambda: cluster.inferenceservice(namespace, "m"), what="InferenceService created")
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"]["runtime"] == "quote"
    assert predictor["model"]["storageUri"] == "s3://bucket/tiny"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 2)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    eventually(lambda: cluster.rayservice(namespace, "m") is None, what="RayService pruned")
    service = cluster.service(namespace, "m")
    assert service is not None and service["spec"]["ports"][0]["target_port"] == 8080
    assert "ray.io/serve" not in service["spec"]["selector"]


def test_dedicated_isolation_gives_each_tenant_its_own_replicas(cluster: Cluster, namespace: str) -> None:
    access = {"tenants": ["acme", "globex"], "isolation": "dedicated"}
    cluster.create_model(namespace, "m", small(namespace, access=access))

    route = eventually(lambda: cluster.route(namespace, "m"), what="route entry written")
    assert route["endpoints"] == {
        "acme": f"http://m-acme.{namespace}.svc.cluster.local:8000/v1",
        "globex": f"http://m-globex.{namespace}.svc.cluster.local:8000/v1",
    }
    for tenant in ("acme", "globex"):
        rayservice = cluster.rayservice(namespace, f"m-{tenant}")
        assert rayservice is not None and rayservice["metadata"]["labels"]["quote.dev/tenant"] == tenant
        service = cluster.service(namespace, f"m-{tenant}")
        assert service is not None and service["spec"]["selector"]["quote.dev/tenant"] == tenant
    assert cluster.rayservice(namespace, "m") is None

    cluster.patch_model(namespace, "m", {"access": {"tenants": ["acme"]}})

    eventually(lambda: cluster.rayservice(namespace, "m-globex") is None, what="globex's RayService pruned")
    assert cluster.service(namespace, "m-globex") is None
    eventually(lambda: list(cluster.route(namespace, "m")["endpoints"]) == ["acme"], what="route narrowed to acme")  # type: ignore[index]


def test_dedicated_isolation_without_named_tenants_is_degraded(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "m", small(namespace, access={"isolation": "dedicated"}))

    degraded = cluster.wait_condition(namespace, "m", "Degraded", "True")
    assert degraded["reason"] == "InvalidSpec" and "name each tenant" in degraded["message"]


def test_a_foreign_object_with_the_childs_name_is_not_taken_over(cluster: Cluster, namespace: str) -> None:
    foreign = {"metadata": {"name": "m"}, "spec": {"selector": {"app": "other"}, "ports": [{"port": 80}]}}
    cluster.core.create_namespaced_service(namespace, foreign)

    cluster.create_model(namespace, "m", small(namespace))

    degraded = cluster.wait_condition(namespace, "m", "Degraded", "True")
    assert degraded["reason"] == "NameTaken" and "Service" in degraded["message"]
    assert cluster.wait_condition(namespace, "m", "Progressing", "True")["reason"] == "Retrying"
    assert cluster.service(namespace, "m")["spec"]["selector"] == {"app": "other"}  # type: ignore[index]

    # Once the name is free, the retry succeeds.
    cluster.core.delete_namespaced_service("m", namespace, _preload_content=False)

    cluster.wait_condition(namespace, "m", "Degraded", "False", timeout_s=30)
    assert cluster.service(namespace, "m")["spec"]["selector"]["quote.dev/model"] == "m"  # type: ignore[index]


def test_a_served_model_name_is_served_once(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "first", small(namespace, servedModelName=f"{namespace}/tiny"))
    eventually(lambda: cluster.route(namespace, "first"), what="first route written")

    cluster.create_model(namespace, "second", small(namespace, servedModelName=f"{namespace}/tiny"))

    degraded = cluster.wait_condition(namespace, "second", "Degraded", "True")
    assert degraded["reason"] == "NameTaken" and f"{namespace}/first" in degraded["message"]
    assert cluster.route(namespace, "second") is None


def test_a_deleted_child_is_recreated(cluster: Cluster, namespace: str) -> None:
    cluster.create_model(namespace, "m", small(namespace))
    eventually(lambda: cluster.service(namespace, "m"), what="Service created")
    cluster.wait_condition(namespace, "m", "Progressing", "True")

    cluster.core.delete_namespaced_service("m", namespace, _preload_content=False)

    eventually(lambda: cluster.service(namespace, "m"), what="Service recreated")
