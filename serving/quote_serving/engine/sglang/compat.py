"""Which SGLang this backend is written against, and what it refuses to run with.

The hooks reach into SGLang's scheduler, sampler and radix cache by dotted path, so the backend is
pinned to one release: 0.5.17, the newest whose wheel pins torch 2.11 (what the GPU image ships;
0.5.18 moved to torch 2.13), with its kernel wheel `sglang-kernel` 0.4.5 and FlashInfer
0.6.15.post1. `unavailable_reason()` says why the backend cannot run here (tests use it as
their skip reason); `check_server_args` rejects configurations the plugin does not handle.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from quote_serving.engine.port import EngineError

__all__ = [
    "PINNED_FLASHINFER_VERSION",
    "PINNED_KERNEL_VERSION",
    "PINNED_SGLANG_VERSION",
    "PINNED_TORCH_VERSION",
    "SGLangConfigError",
    "SGLangUnavailableError",
    "check_server_args",
    "require_sglang",
    "unavailable_reason",
]

PINNED_SGLANG_VERSION = "0.5.17"
PINNED_KERNEL_VERSION = "0.4.5"  # the `sglang-kernel` distribution (import name sgl_kernel)
PINNED_FLASHINFER_VERSION = "0.6.15.post1"
PINNED_TORCH_VERSION = "2.11.0"


class SGLangUnavailableError(EngineError):
    """Raised when the SGLang backend is asked for on a machine that cannot run it."""


class SGLangConfigError(EngineError, ValueError):
    """Raised when SGLang's server arguments ask for something the Quote plugin does not handle."""


def installed_version(distribution: str = "sglang") -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def unavailable_reason() -> str | None:
    """None when SGLang can run here; otherwise what is missing, and what to do about it."""
    import torch

    if not torch.cuda.is_available():
        return "the SGLang backend needs an NVIDIA GPU (torch.cuda.is_available() is False)"
    version = installed_version()
    if version is None:
        return f"sglang is not installed: install sglang=={PINNED_SGLANG_VERSION} (deploy/gpu/README.md)"
    if version != PINNED_SGLANG_VERSION:
        return f"sglang {version} is installed, but the Quote plugin is pinned to {PINNED_SGLANG_VERSION}"
    return None


def require_sglang() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise SGLangUnavailableError(reason)


def check_server_args(args: Any) -> None:
    """Refuse configurations whose scheduling the plugin does not follow (see the package docs)."""
    problems = []
    if not args.disable_overlap_schedule:
        problems.append(
            "overlap scheduling must be off (disable_overlap_schedule=True):"
            " a mod's edit must land before the next forward is launched"
        )
    for name in ("tp_size", "pp_size", "dp_size"):
        if getattr(args, name, 1) != 1:
            problems.append(f"{name}={getattr(args, name)}: the in-process scheduler runs one rank")
    if getattr(args, "speculative_algorithm", None):
        problems.append("speculative decoding is not supported (a step must commit exactly one token)")
    if getattr(args, "enable_mixed_chunk", False):
        problems.append("enable_mixed_chunk is not supported (prefill and decode rows must come in separate batches)")
    if getattr(args, "disaggregation_mode", "null") not in ("null", None):
        problems.append("prefill/decode disaggregation is not supported")
    if not getattr(args, "skip_tokenizer_init", False):
        problems.append("skip_tokenizer_init must be True: Quote detokenizes and applies stop strings itself")
    if problems:
        raise SGLangConfigError("SGLang configuration not supported by the Quote plugin: " + "; ".join(problems))
