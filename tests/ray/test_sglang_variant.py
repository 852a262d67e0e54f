"""`engine: sglang` on Ray Serve, on a machine that cannot run it: the replica says what is missing.

The engine replica is placed on the cluster's declared GPU (conftest), imports nothing of sglang,
and fails its start with `SGLangUnavailableError` naming the missing piece; Serve reports the
deployment failed with that message (no ImportError traceback), and the application is removed.
"""

from __future__ import annotations

import pytest

from quote_serving.engine.sglang import unavailable_reason
from tests.ray.conftest import ServeCluster

pytestmark = pytest.mark.skipif(unavailable_reason() is None, reason="this machine can run SGLang")


def test_sglang_replica_without_gpu_or_sglang_fails_saying_what_is_missing(ray_cluster: ServeCluster) -> None:
    from ray import serve

    reason = unavailable_reason()
    assert reason is not None
    try:
        with pytest.raises(RuntimeError, match="QuoteEngine"):
            ray_cluster.deploy(
                "sglang-cpu",
                engine="sglang",
                min_replicas=1,
                max_replicas=1,
                num_cpus=0.5,
                max_constructor_retry_count=1,
            )
        engine = serve.status().applications["sglang-cpu"].deployments["QuoteEngine"]
        assert engine.status == "DEPLOY_FAILED"
        message = engine.message
        assert "engine: sglang cannot start on this replica" in message
        assert reason in message  # "needs an NVIDIA GPU ..." or "sglang is not installed: install sglang==..."
        assert "SGLangUnavailableError" in message
        assert "ImportError" not in message and "ModuleNotFoundError" not in message
    finally:
        if "sglang-cpu" in serve.status().applications:
            serve.delete("sglang-cpu")
