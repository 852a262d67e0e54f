"""The SGLang engine backend: Quote's mods inside SGLang's scheduler, through its plugin hooks.

SGLang (pinned: `compat.PINNED_SGLANG_VERSION`) runs in Quote's engine thread: `SGLangModRuntime`
builds SGLang's own `Scheduler` there (`launcher`), and the `sglang.srt.plugins` entry point
(`plugin.register`) hooks its request intake, batch launch, sampling and result processing. The
hooks hand each step to a `SchedulerBridge`, which keeps Quote's requests (`tracked`) and runs
one step for all of them at once (`step`): ForwardPass on the GPU logits rows, the mods' edits
(`logits_edits`), Quote's sampler, Sampled/Added, and a plan per request (`rollback.plan_sync`)
that `scheduler_ops` applies: append, trim the KV in place, requeue through the radix cache, or
finish. Overlap scheduling is off for these engines (`settings`): an edit must land before the
next forward is launched.

Importing this package does not import sglang; `build_runtime` works on any machine, and the
engine thread checks for a GPU and the pinned sglang when it starts.
"""

from quote_serving.engine.sglang.compat import (
    PINNED_KERNEL_VERSION,
    PINNED_SGLANG_VERSION,
    SGLangConfigError,
    SGLangUnavailableError,
    unavailable_reason,
)
from quote_serving.engine.sglang.factory import build_runtime
from quote_serving.engine.sglang.logits_edits import LogitsEditBatch
from quote_serving.engine.sglang.rollback import SyncKind, SyncPlan, plan_sync
from quote_serving.engine.sglang.runtime import SGLangModRuntime, SGLangStartError
from quote_serving.engine.sglang.settings import SGLangEngineSettings

__all__ = [
    "PINNED_KERNEL_VERSION",
    "PINNED_SGLANG_VERSION",
    "LogitsEditBatch",
    "SGLangConfigError",
    "SGLangEngineSettings",
    "SGLangModRuntime",
    "SGLangStartError",
    "SGLangUnavailableError",
    "SyncKind",
    "SyncPlan",
    "build_runtime",
    "plan_sync",
    "unavailable_reason",
]
