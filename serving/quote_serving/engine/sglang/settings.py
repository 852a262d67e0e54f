"""Settings of an in-process SGLang engine, and the SGLang server arguments they become.

Quote fixes the arguments its plugin depends on (overlap scheduling off, one rank, no tokenizer
in the scheduler, no watchdog that would signal the hosting process) and leaves model and memory
choices to the deployment. `extra` passes any other `sglang.srt.server_args.ServerArgs` field
through, and is checked like the rest (`compat.check_server_args`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SGLangEngineSettings"]

# SGLang's scheduler watchdog sends SIGQUIT to the *parent* of the process it runs in. In a
# subprocess that is SGLang's launcher; in-process it would be pytest's shell or Ray's raylet.
# Quote's own health check (the engine thread) replaces it, so it is pushed out of reach.
_NO_WATCHDOG_S = 10**9


@dataclass(frozen=True)
class SGLangEngineSettings:
    """One model on one GPU, run by SGLang's scheduler inside Quote's engine thread."""

    model_path: str  # a local directory (or hub id, if the machine can download)
    dtype: str = "auto"  # "float32" for exact-logits tests; "bfloat16"/"auto" for serving
    gpu_id: int = 0
    attention_backend: str | None = None  # None: SGLang's default for the GPU ("triton" works for any head size)
    mem_fraction_static: float | None = None  # share of GPU memory for weights + KV; None: SGLang's default
    max_running_requests: int | None = None
    context_length: int | None = None
    chunked_prefill_size: int | None = None
    disable_cuda_graph: bool = False
    disable_radix_cache: bool = False  # True makes every requeue a full re-prefill (correct, slow)
    inplace_trim: bool = True  # backtracks within decode-generated tokens free KV in place (no prefill)
    random_seed: int | None = None
    log_level: str = "warning"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def server_args(self) -> dict[str, Any]:
        """Keyword arguments for `ServerArgs(...)`."""
        args: dict[str, Any] = {
            "model_path": self.model_path,
            "dtype": self.dtype,
            "base_gpu_id": self.gpu_id,
            "disable_cuda_graph": self.disable_cuda_graph,
            "disable_radix_cache": self.disable_radix_cache,
            "log_level": self.log_level,
        }
        optional = {
            "attention_backend": self.attention_backend,
            "mem_fraction_static": self.mem_fraction_static,
            "max_running_requests": self.max_running_requests,
            "context_length": self.context_length,
            "chunked_prefill_size": self.chunked_prefill_size,
            "random_seed": self.random_seed,
        }
        args.update({k: v for k, v in optional.items() if v is not None})
        args.update(self.extra)
        args.update(self.fixed_server_args())
        return args

    @staticmethod
    def fixed_server_args() -> dict[str, Any]:
        """What the plugin needs whatever the deployment asks for (see `compat.check_server_args`)."""
        return {
            "disable_overlap_schedule": True,  # edits must land before the next forward is launched
            "skip_tokenizer_init": True,  # Quote detokenizes and handles stop strings
            "tp_size": 1,
            "pp_size": 1,
            "dp_size": 1,
            "enable_mixed_chunk": False,
            "grammar_backend": "none",  # constrained generation is done by mods (strategies)
            "sampling_backend": "pytorch",  # Quote samples its own rows; no FlashInfer JIT for the rest
            "watchdog_timeout": _NO_WATCHDOG_S,
            "enable_metrics": False,  # Quote's /metrics counts its requests
        }
