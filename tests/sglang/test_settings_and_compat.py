"""Server arguments Quote fixes, configurations it refuses, and why the backend cannot run here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from quote_serving.engine.sglang import compat
from quote_serving.engine.sglang.compat import SGLangConfigError, check_server_args
from quote_serving.engine.sglang.settings import SGLangEngineSettings


def test_fixed_arguments_win_over_the_deployments_extras() -> None:
    settings = SGLangEngineSettings(
        model_path="/models/m",
        dtype="bfloat16",
        attention_backend="triton",
        mem_fraction_static=0.5,
        extra={"disable_overlap_schedule": False, "tp_size": 4, "schedule_policy": "fcfs"},
    )
    args = settings.server_args()
    assert args["model_path"] == "/models/m" and args["dtype"] == "bfloat16" and args["attention_backend"] == "triton"
    assert args["mem_fraction_static"] == 0.5 and args["schedule_policy"] == "fcfs"
    assert args["disable_overlap_schedule"] is True and args["tp_size"] == 1
    assert args["skip_tokenizer_init"] is True and args["watchdog_timeout"] >= 10**9
    assert "context_length" not in args  # unset options are left to SGLang


def server_args(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{**SGLangEngineSettings(model_path="m").server_args(), **overrides})


def test_the_fixed_arguments_pass_the_check() -> None:
    check_server_args(server_args())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"disable_overlap_schedule": False}, "overlap scheduling must be off"),
        ({"tp_size": 2}, "tp_size=2"),
        ({"speculative_algorithm": "EAGLE"}, "speculative decoding"),
        ({"enable_mixed_chunk": True}, "enable_mixed_chunk"),
        ({"disaggregation_mode": "prefill"}, "disaggregation"),
        ({"skip_tokenizer_init": False}, "skip_tokenizer_init"),
    ],
)
def test_unsupported_configurations_are_refused_with_the_reason(override: dict[str, Any], message: str) -> None:
    with pytest.raises(SGLangConfigError, match=message):
        check_server_args(server_args(**override))


def test_the_reason_sglang_cannot_run_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "needs an NVIDIA GPU" in (compat.unavailable_reason() or "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(compat, "installed_version", lambda distribution="sglang": None)
    assert "sglang is not installed" in (compat.unavailable_reason() or "")
    monkeypatch.setattr(compat, "installed_version", lambda distribution="sglang": "0.5.23")
    assert "pinned to 0.5.17" in (compat.unavailable_reason() or "")
    monkeypatch.setattr(compat, "installed_version", lambda distribution="sglang": compat.PINNED_SGLANG_VERSION)
    assert compat.unavailable_reason() is None


def test_importing_the_backend_does_not_import_sglang() -> None:
    import subprocess
    import sys

    code = "import sys, quote_serving.engine.sglang as s; s.build_runtime; print('sglang' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"


def test_starting_where_sglang_cannot_run_fails_fast_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from quote_serving.engine.sglang import SGLangStartError, build_runtime

    monkeypatch.setattr(compat, "unavailable_reason", lambda: "the SGLang backend needs an NVIDIA GPU (test)")
    runtime = build_runtime(None)  # the offline tiny model; nothing is imported from sglang yet
    assert runtime.engine.attention_backend == "triton" and runtime.model_name == "quote-tiny"
    with pytest.raises(SGLangStartError, match="needs an NVIDIA GPU"):
        runtime.start()
    runtime.stop()
    assert not runtime.healthy
