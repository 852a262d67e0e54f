"""Fixtures for the SGLang backend's tests.

CPU tests drive the real runtime, bridge, plugin hooks, plans and ops against `FakeScheduler`
(SGLang's bookkeeping, checked on every forward). GPU tests (marked `gpu`) need CUDA and the
pinned sglang; `requires_sglang` skips them with the reason `compat.unavailable_reason` gives.
"""

from __future__ import annotations

from typing import Any

import pytest

from quote_serving.engine.sglang.bridge import activate, deactivate
from quote_serving.engine.sglang.compat import unavailable_reason
from quote_serving.engine.sglang.runtime import SGLangModRuntime
from quote_serving.engine.sglang.scheduler_ops import SchedulerOps
from quote_serving.engine.sglang.settings import SGLangEngineSettings
from quote_serving.runtime.mod_runtime import RuntimeSettings

from .fake_sglang import FakeApi, FakeScheduler


def requires_sglang() -> pytest.MarkDecorator:
    """Skip unless this machine has an NVIDIA GPU and sglang at the pinned version (say why)."""
    reason = unavailable_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


class FakeSGLangRuntime(SGLangModRuntime):
    """The real `SGLangModRuntime`, its engine thread looping over `FakeScheduler` instead of SGLang."""

    def __init__(self, model: Any, tokenizer: Any, *, inplace_trim: bool = True, **kwargs: Any) -> None:
        engine = SGLangEngineSettings(model_path="<fake>", inplace_trim=inplace_trim)
        kwargs.setdefault("settings", RuntimeSettings(max_batch=64, mod_budget_ms=500))
        super().__init__(engine, tokenizer, model_name="quote-tiny", **kwargs)
        self.fake = FakeScheduler(model)

    def _run(self) -> None:
        bridge = self._bridge_for(self.fake, ops=SchedulerOps(FakeApi(self.fake)))
        self._scheduler = self.fake
        activate(bridge)
        self._ready.set()
        try:
            while not self._stopped.is_set():
                self.fake.iterate()
        except Exception:  # a broken invariant: fail the requests now rather than at the test's timeout
            self.fail_all("fake scheduler invariant broken (see the log)")
            raise
        finally:
            deactivate(bridge)


@pytest.fixture(scope="module")
def tiny() -> Any:
    """The offline tiny model and tokenizer (the same the embedded conformance runs use)."""
    from quote_serving.models.loader import load_model

    return load_model(None, device="cpu")
