"""How many intra-op threads torch gets on the engine thread of a CPU host.

libgomp (the OpenMP runtime in torch's CPU wheels) lets its workers spin-wait between parallel
regions only while it manages no more threads than the process may run on; past that, every
region's hand-off is a futex sleep and wake-up. Every model call is hundreds of such regions. The
engine runs on a thread of its own (`ModRuntime`), not the interpreter's first one, which libgomp
already counts, so torch's default of one thread per CPU puts it one over: on the 2-core CI VM a
SmolLM2 int8 decode step of 8 sequences took 41 ms on the main thread with 2 threads, 72 ms on the
engine thread with 2 threads, and 49 ms there with 1; end to end at 8 concurrent requests, 85 against
115 tokens/s. So off the main thread the engine uses at most one thread fewer than its CPUs.

    engine thread starts ─► engine_threads() ─► torch.set_num_threads(min(asked, CPUs − 1))
"""

from __future__ import annotations

import logging
import os
import threading

import torch

__all__ = ["engine_threads"]

logger = logging.getLogger(__name__)


def engine_threads(requested: int | None = None) -> int:
    """Set (and return) the calling engine thread's intra-op thread count: `requested` (default:
    torch's current setting), capped at CPUs − 1 unless this is the main thread."""
    cpus = len(os.sched_getaffinity(0))
    wanted = requested or torch.get_num_threads()
    threads = wanted
    if threading.current_thread() is not threading.main_thread():
        threads = min(wanted, max(1, cpus - 1))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    if threads < wanted:
        logger.info("engine thread: %d intra-op thread(s) of %d CPUs (one per CPU would stall OpenMP)", threads, cpus)
    return threads
