"""The application's arguments: what `serveConfigV2` / `serve run` pass to `app_builder`.

One model per application. Every knob of the three deployments lives here, validated once, so a
typo in a Kubernetes operator's generated config fails the deploy instead of being ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from quote_serving.engine.sglang.settings import SGLangEngineSettings

__all__ = ["SGLANG_FIXED_OPTIONS", "QuoteAppArgs"]

# SGLangEngineSettings fields the application sets itself: the model comes from `model`, and Ray
# places each replica on its GPU (CUDA_VISIBLE_DEVICES), so SGLang always uses the first visible one.
SGLANG_FIXED_OPTIONS = frozenset({"model_path", "gpu_id"})


class QuoteAppArgs(BaseModel):
    """Arguments of `quote_serving.ray_serve.app:app_builder` (the `args:` of a Serve config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- the model ------------------------------------------------------------------------------
    model: str | None = Field(default=None, description="Hugging Face id or local path; None: the offline tiny model")
    served_model_name: str | None = Field(
        default=None, description="Name clients send as `model`; default: the model id"
    )
    device: str | None = Field(default=None, description="torch device of engine replicas; default: CUDA when present")
    dtype: str | None = Field(default=None, description="auto, float32, float16 or bfloat16; default as `load_model`")
    engine: Literal["embedded", "sglang"] = Field(
        default="embedded",
        description="embedded (torch, CPU or GPU) or sglang (SGLang's scheduler + Quote's plugin, one GPU per replica)",
    )
    sglang: dict[str, Any] = Field(
        default_factory=dict,
        description="engine: sglang only; SGLangEngineSettings fields (attention_backend, mem_fraction_static, ...)",
    )

    # -- engine autoscaling (Serve's autoscaling_config of the engine deployment) ---------------
    min_replicas: int = Field(
        default=1, ge=0, description="0 allows scaling to zero (the next request waits a cold start)"
    )
    max_replicas: int = Field(default=1, ge=1)
    initial_replicas: int | None = Field(
        default=None, ge=0, description="replicas at deploy time; default min_replicas"
    )
    target_ongoing_requests: float = Field(
        default=8.0,
        gt=0,
        description="requests per engine replica Serve aims for; below max_batch so batches have room",
    )
    upscale_delay_s: float = Field(default=30.0, ge=0, description="sustained overload before adding replicas, seconds")
    downscale_delay_s: float = Field(
        default=600.0, ge=0, description="sustained underload before removing one, seconds"
    )
    downscale_to_zero_delay_s: float | None = Field(
        default=None, ge=0, description="idle time before 1 → 0; default above"
    )
    look_back_period_s: float = Field(default=30.0, gt=0, description="window the load is averaged over, seconds")
    metrics_interval_s: float = Field(default=10.0, gt=0, description="how often replicas report their load, seconds")

    # -- engine replicas ------------------------------------------------------------------------
    num_cpus: float = Field(default=1.0, ge=0, description="Ray CPUs reserved by one engine replica")
    num_gpus: float = Field(
        default=0.0, ge=0, description="Ray GPUs reserved by one engine replica; engine sglang: 1 (its default)"
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch intra-op threads per replica; default: its CPUs (replicas must not share)",
    )
    max_batch: int = Field(default=32, ge=1, description="requests sharing one batched forward pass")
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, description="requests Serve sends one engine replica at once; default max_batch"
    )
    mod_budget_ms: float = Field(default=2000.0, gt=0, description="time budget of one mod call, milliseconds")
    mod_isolation: Literal["auto", "inline", "process"] = Field(
        default="auto", description="where mods run: process (confined workers), inline, auto (process unless dev)"
    )
    mod_memory_mb: int = Field(default=2048, ge=256, description="address-space cap of one mod worker, MiB")
    mod_isolation_weak: bool = Field(
        default=False, description="run tenants' mods even when a confinement layer cannot be applied"
    )
    stream_interval_s: float = Field(
        default=0.05, ge=0, description="at most one snapshot per request per interval crosses the Ray hop (coalesced)"
    )
    graceful_shutdown_timeout_s: float = Field(
        default=60.0, ge=0, description="a draining replica waits this long for its running requests before it stops"
    )
    max_constructor_retry_count: int | None = Field(
        default=None,
        ge=1,
        description="failed replica starts before Serve marks the engine deployment failed; default: Serve's",
    )
    health_check_period_s: float = Field(default=10.0, gt=0)
    health_check_timeout_s: float = Field(default=30.0, gt=0)

    # -- ingress (OpenAI API) -------------------------------------------------------------------
    ingress_replicas: int = Field(default=1, ge=1, description="OpenAI API replicas (tokenise, stream, hold back)")
    ingress_num_cpus: float = Field(default=0.0, ge=0, description="Ray CPUs reserved per ingress replica")
    ingress_max_ongoing_requests: int = Field(default=256, ge=1, description="HTTP requests one ingress replica holds")
    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    max_tokens_default: int = Field(default=256, ge=1)
    trace_top_k: int = Field(default=5, ge=0, le=20)

    # -- mods -----------------------------------------------------------------------------------
    registry_url: str | None = Field(
        default=None,
        description="mod registry (API key: QUOTE_REGISTRY_API_KEY on the pods); None: the app's own store",
    )
    dev_mode: bool | None = Field(default=None, description="accept unsigned mods; default: on without a registry only")
    mod_alias_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="how stale `<mod>` (latest) may be on an ingress that did not publish it, seconds",
    )

    @model_validator(mode="before")
    @classmethod
    def _sglang_takes_a_gpu(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("engine") == "sglang" and data.get("num_gpus") is None:
            return {**data, "num_gpus": 1}
        return data

    @field_validator("sglang")
    @classmethod
    def _known_sglang_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        if options:
            _sglang_settings(options)  # names and types checked now, not when a replica starts
        return options

    @model_validator(mode="after")
    def _sglang_fits(self) -> QuoteAppArgs:
        if self.engine != "sglang":
            if self.sglang:
                raise ValueError("sglang options are for engine: sglang; remove them or set engine: sglang")
            return self
        if self.num_gpus != 1:
            raise ValueError(
                f"engine sglang runs one SGLang rank on one GPU per replica: num_gpus must be 1, not {self.num_gpus:g}"
                " (add replicas to scale out)"
            )
        if self.device is not None:
            raise ValueError("engine sglang runs on the GPU Ray gives the replica: leave device unset")
        return self

    @model_validator(mode="after")
    def _replicas_in_order(self) -> QuoteAppArgs:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("initial_replicas must lie between min_replicas and max_replicas")
        return self

    def sglang_settings(self) -> SGLangEngineSettings:
        """The engine replica's SGLang settings (engine: sglang); `model_path` is filled in from `model`."""
        options: dict[str, Any] = {"dtype": self.dtype or "auto", "max_running_requests": self.max_batch}
        return _sglang_settings({**options, **self.sglang})

    @property
    def engine_threads(self) -> int:
        return self.torch_threads or max(1, int(self.num_cpus))

    def autoscaling_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "look_back_period_s": self.look_back_period_s,
            "metrics_interval_s": self.metrics_interval_s,
        }
        if self.initial_replicas is not None:
            config["initial_replicas"] = self.initial_replicas
        if self.downscale_to_zero_delay_s is not None:
            config["downscale_to_zero_delay_s"] = self.downscale_to_zero_delay_s
        return config

    def engine_options(self) -> dict[str, Any]:
        """`Deployment.options(...)` of the engine deployment."""
        actor: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            actor["num_gpus"] = self.num_gpus
        # A fixed size needs no autoscaler (its metrics cost the controller CPU on every push).
        fixed = self.min_replicas == self.max_replicas and self.initial_replicas is None
        scaling = {"num_replicas": self.min_replicas} if fixed else {"autoscaling_config": self.autoscaling_config()}
        retries = (
            {}
            if self.max_constructor_retry_count is None
            else {"max_constructor_retry_count": self.max_constructor_retry_count}
        )
        return {
            **scaling,
            **retries,
            "ray_actor_options": actor,
            "max_ongoing_requests": self.max_ongoing_requests or self.max_batch,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
        }

    def ingress_options(self) -> dict[str, Any]:
        return {
            "num_replicas": self.ingress_replicas,
            "ray_actor_options": {"num_cpus": self.ingress_num_cpus},
            "max_ongoing_requests": self.ingress_max_ongoing_requests,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
        }


def _sglang_settings(options: dict[str, Any]) -> SGLangEngineSettings:
    """`SGLangEngineSettings` from app args, checked by pydantic (importing it does not import sglang)."""
    import dataclasses

    from pydantic import TypeAdapter

    from quote_serving.engine.sglang.settings import SGLangEngineSettings

    fixed = sorted(SGLANG_FIXED_OPTIONS & options.keys())
    if fixed:
        raise ValueError(f"sglang options {fixed} are set by the application (model: the model; Ray: the GPU)")
    known = {f.name for f in dataclasses.fields(SGLangEngineSettings)} - SGLANG_FIXED_OPTIONS
    unknown = sorted(options.keys() - known)
    if unknown:
        raise ValueError(
            f"unknown sglang options {unknown}; known: {sorted(known)} (other ServerArgs fields go under `extra`)"
        )
    settings: SGLangEngineSettings = TypeAdapter(SGLangEngineSettings).validate_python(
        {**options, "model_path": ""}, strict=False
    )
    return settings
