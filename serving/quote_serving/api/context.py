"""What route handlers depend on: the served model, its runtime and the mod store.

Handlers receive it as `Ctx` (an `Annotated` FastAPI dependency), so tests can build an app
around any backend and the gateway can reuse the same handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from quote_serving.mods.source import ModSource
from quote_serving.runtime.mod_runtime import ModRuntime
from quote_serving.settings import ServeSettings

__all__ = ["Ctx", "ServingContext"]


@dataclass
class ServingContext:
    model_name: str
    runtime: ModRuntime
    tokenizer: Any
    mods: ModSource
    settings: ServeSettings
    context_window: int
    created: int
    # temperature/top_p from the model's generation_config, used when a request leaves them out (as vLLM does)
    sampling_defaults: dict[str, float] = field(default_factory=dict)

    @property
    def served_models(self) -> list[str]:
        return [self.model_name]


def _context(request: Request) -> ServingContext:
    ctx: ServingContext = request.app.state.quote
    return ctx


Ctx = Annotated[ServingContext, Depends(_context)]
