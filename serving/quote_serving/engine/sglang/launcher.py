"""Build SGLang's scheduler inside the calling thread, with Quote's hooks applied; tear it down.

`sglang.Engine` would start the scheduler in a subprocess, talking to a tokenizer and a
detokenizer process over ZMQ. Quote instead constructs the same `Scheduler` class in its engine
thread (what `run_scheduler_process` does, minus process setup: no process title, no logging
reconfiguration, no CPU affinity, no parent-killing watchdog), so mods run in the scheduler's
process and see each step directly. Only rank 0 of one GPU: see `compat.check_server_args`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from quote_serving.engine.sglang.compat import SGLangConfigError, check_server_args, require_sglang
from quote_serving.engine.sglang.settings import SGLangEngineSettings

__all__ = ["build_scheduler", "install_hooks", "shutdown_scheduler"]

logger = logging.getLogger(__name__)


def install_hooks() -> None:
    """Load SGLang's plugins and make sure Quote's hooks are applied in this process.

    `load_plugins` runs the `sglang.srt.plugins` entry points (Quote's, when installed as a
    distribution); `register` covers a checkout on PYTHONPATH or an `SGLANG_PLUGINS` filter.
    """
    from sglang.srt.plugins import load_plugins
    from sglang.srt.plugins.hook_registry import HookRegistry

    from quote_serving.engine.sglang.plugin import HOOKS, register

    load_plugins()
    register()
    HookRegistry.apply_hooks()
    missing = [target for target in HOOKS if target not in HookRegistry._patched]
    if missing:
        raise SGLangConfigError(f"SGLang hooks could not be applied to {missing}: is the pinned sglang installed?")


def build_scheduler(settings: SGLangEngineSettings) -> Any:
    """A ready `Scheduler` (model loaded, KV pools allocated, CUDA graphs captured)."""
    require_sglang()
    install_hooks()
    from sglang.srt.managers.scheduler import Scheduler
    from sglang.srt.runtime_context import publish
    from sglang.srt.server_args import PortArgs, ServerArgs

    server_args = ServerArgs(**settings.server_args())
    check_server_args(server_args)
    port_args = PortArgs.init_new(server_args)
    publish(server_args, role="scheduler")
    scheduler = Scheduler(server_args, port_args, settings.gpu_id, 0, 0, 0, 0, 0, None)
    logger.info("SGLang scheduler ready for %s: %s", settings.model_path, scheduler.get_init_info())
    return scheduler


def shutdown_scheduler(scheduler: Any) -> None:
    """Free what the scheduler holds so another engine can start in this process."""
    with contextlib.suppress(Exception):
        scheduler.release_host_resources()
    from sglang.srt.distributed.parallel_state import cleanup_dist_env_and_memory

    cleanup_dist_env_and_memory()
