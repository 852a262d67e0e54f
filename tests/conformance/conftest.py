"""Conformance harness: the same tests for every engine backend behind the ModRuntime.

A backend joins the suite by adding a factory to BACKENDS; backends that need hardware are
marked (e.g. `gpu`) so CPU CI runs the embedded reference and GPU machines run the rest.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from quote_mod_sdk.generation import GenerationParams
from quote_mod_sdk.mod import Mod
from quote_serving.engine.sampling import SamplingParams
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle, Snapshot


@dataclass
class Engine:
    name: str
    model: Any
    tokenizer: Any
    runtime: ModRuntime

    def reference_logits(self, tokens: Sequence[int]) -> torch.Tensor:
        """Next-token logits computed from scratch by the plain model (no cache)."""
        with torch.no_grad():
            ids = torch.tensor([list(tokens)], device=self.model.device)
            return self.model(ids).logits[0, -1].float().cpu()

    def request(self, prompt: str | list[int], mod: Mod | None = None, **params: Any) -> GenerationRequest:
        ids = self.tokenizer.encode(prompt, add_special_tokens=False) if isinstance(prompt, str) else prompt
        sampling = params.pop("sampling", SamplingParams(temperature=0.0))
        eos = self.tokenizer.eos_token_id
        gen = GenerationParams(stop_token_ids=frozenset({eos}), **{"max_tokens": 16, **params})
        return GenerationRequest(f"req-{uuid.uuid4().hex[:10]}", list(ids), gen, sampling, mod)

    def run(
        self, *requests: GenerationRequest, cancel_after: float | None = None
    ) -> list[tuple[RequestHandle, Snapshot]]:
        """Submit all at once (so they share batches) and wait for every result."""

        async def main() -> list[tuple[RequestHandle, Snapshot]]:
            loop = asyncio.get_running_loop()
            handles = [self.runtime.submit(RequestHandle(r, loop)) for r in requests]
            if cancel_after is not None:
                await asyncio.sleep(cancel_after)
                for h in handles:
                    h.cancel()
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=120)
            return list(zip(handles, results))

        return asyncio.run(main())


def _embedded(model: str | None = None) -> Engine:
    from quote_serving.engine.embedded import EmbeddedBackend
    from quote_serving.models.loader import load_model

    loaded = load_model(model, device="cpu", dtype="float32")
    runtime = ModRuntime(
        EmbeddedBackend(loaded.model),
        loaded.tokenizer,
        model_name=loaded.model_id,
        settings=RuntimeSettings(max_batch=16, mod_budget_ms=500),
    )
    return Engine("embedded", loaded.model, loaded.tokenizer, runtime)


def _embedded_dispatch() -> Engine:
    """The embedded engine stepping the way it does with isolated mods (`runtime/dispatch.py`): every
    phase's mod calls sent at once (here to threads: `ThreadedCalls`), each Sampled with the Added a
    noop answer implies, stragglers sitting out the next forward. The mods stay in this process
    (the tests' mods close over test state), under the same budget."""
    from quote_serving.runtime.dispatch import ThreadedCalls

    engine = _embedded()
    runtime = engine.runtime
    runtime.invoker_for = lambda handle: runtime.budget
    runtime.mod_calls = ThreadedCalls(runtime.budget, runtime.call_pool(), engine.tokenizer)
    return Engine("dispatch", engine.model, engine.tokenizer, runtime)


def _embedded_smollm2() -> Engine:
    """The embedded engine on the trained default model (SmolLM2-135M-Instruct, float32)."""
    return _embedded("smollm2")


def _sglang() -> Engine:
    """SGLang's scheduler with Quote's plugin, on a tiny real-architecture model built here.

    Needs an NVIDIA GPU and the pinned sglang (deploy/gpu/README.md); skips with the reason otherwise.
    """
    from tests.sglang.gpu_support import build_sglang_parts

    model, tokenizer, runtime = build_sglang_parts()
    return Engine("sglang", model, tokenizer, runtime)


BACKENDS: dict[str, Callable[[], Engine]] = {
    "embedded": _embedded,
    "dispatch": _embedded_dispatch,
    "smollm2": _embedded_smollm2,
    "sglang": _sglang,
}
GPU_BACKENDS = {"sglang"}
REAL_MODEL_BACKENDS = {"smollm2"}


def _backend_params() -> list[Any]:
    marks = {name: pytest.mark.gpu for name in GPU_BACKENDS} | {
        name: pytest.mark.real_model for name in REAL_MODEL_BACKENDS
    }
    return [pytest.param(name, marks=marks[name]) if name in marks else name for name in sorted(BACKENDS)]


@pytest.fixture(scope="module", params=_backend_params())
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    built = BACKENDS[request.param]()
    built.runtime.start()
    yield built
    built.runtime.stop()
