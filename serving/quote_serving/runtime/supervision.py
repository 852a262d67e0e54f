"""What a replica does when its engine loop dies: exit, so that its supervisor restarts it.

The engine loop catches everything a request or a mod raises (`ModRuntime._supervised`); if it
still ends, the replica cannot serve again. It turns not ready at once (`ModRuntime.healthy`),
gets a moment to deliver the error answers already published, then exits with `EXIT_ENGINE_DIED`
(Kubernetes, systemd or Ray restart it) instead of staying up with requests that would hang.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["EXIT_ENGINE_DIED", "exit_process_soon"]

logger = logging.getLogger(__name__)

EXIT_ENGINE_DIED = 70  # EX_SOFTWARE


def exit_process_soon(delay_s: float = 1.0) -> None:
    """Exit the whole process after `delay_s` (from a timer: callable on the dying engine thread)."""
    logger.critical("the engine loop died: exiting in %.1f s so the supervisor restarts the replica", delay_s)
    timer = threading.Timer(delay_s, os._exit, args=(EXIT_ENGINE_DIED,))
    timer.daemon = False
    timer.start()
