"""A mod worker's confinement layers, applied once by `mod_worker` before any mod code loads.

    priority       nice 10 and SCHED_BATCH: mods never compete with the engine for CPU on equal
                   terms, and a worker woken by a call never preempts the engine thread that
                   sends it (so a step's calls all go out before any worker runs). A worker
                   leads a session of its own, and where the kernel groups tasks by session
                   (autogroup) a nice value counts only inside its group, whose weight would
                   equal the whole engine's: the group gets nice 10 too
    rlimits        RLIMIT_AS (QUOTE_MOD_MEMORY_MB), RLIMIT_CPU (a backstop: the pool recycles a
                   worker before it), RLIMIT_NOFILE, RLIMIT_CORE=0
    no_new_privs   prctl(PR_SET_NO_NEW_PRIVS) (Landlock and seccomp need it)
    landlock       `mod_landlock`: read-only filesystem beneath what Python needs, no TCP
    seccomp        (pyseccomp) EPERM for socket/connect/bind/listen, execve, ptrace,
                   process_vm_readv/writev, mount/umount/unshare/setns/chroot/pivot_root,
                   raising its own priority, and kill/tgkill aimed at any process but itself

`confine` returns {layer: "applied" | why not}; the worker sends it in its ready frame and the
engine logs it at start, so a layer this host cannot apply is named.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from collections.abc import Iterable
from typing import Any

from quote_serving.runtime.mod_landlock import apply_landlock, readable_paths

__all__ = ["DENIED", "confine"]

PR_SET_NO_NEW_PRIVS = 38
NICENESS = 10
AUTOGROUP = "/proc/self/autogroup"  # the session's scheduling group (CONFIG_SCHED_AUTOGROUP kernels)
DENIED = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "execve", "execveat", "ptrace",
    "process_vm_readv", "process_vm_writev", "mount", "umount2", "unshare", "setns", "chroot", "pivot_root",
    "setpriority", "sched_setscheduler", "sched_setparam", "sched_setattr",
)  # fmt: skip


def confine(config: dict[str, Any], read: Iterable[str] = ()) -> dict[str, str]:
    """Apply every layer; {layer: "applied" | why it is not}. `read`: extra readable paths."""
    layers = {"priority": _priority(), "rlimits": _rlimits(config)}
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        layers["no_new_privs"] = "applied"
    else:
        layers["no_new_privs"] = f"not applied: {os.strerror(ctypes.get_errno())}"
    filter_ = _seccomp_filter()  # built before Landlock: building it may need a temp file
    layers["landlock"] = apply_landlock(readable_paths(read))
    layers["seccomp"] = _load(filter_)
    return layers


def _priority() -> str:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), NICENESS))
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        if os.path.exists(AUTOGROUP):  # before Landlock, which makes /proc read-only to the mod
            with open(AUTOGROUP, "w") as group:
                group.write(str(NICENESS))
    except OSError as exc:
        return f"not applied: {exc}"
    return "applied"


def _rlimits(config: dict[str, Any]) -> str:
    try:
        memory = int(config.get("memory_mb") or 0)
        if memory > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory << 20, memory << 20))
        cpu = int(config.get("cpu_s") or 0)
        if cpu > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError) as exc:
        return f"not applied: {exc}"
    return "applied"


def _seccomp_filter() -> Any:
    """The filter, ready to load, or why there is none (a string)."""
    try:
        import pyseccomp as sc
    except Exception as exc:  # libseccomp missing on the host
        return f"not applied: {type(exc).__name__}: {exc}"
    try:
        flt = sc.SyscallFilter(defaction=sc.ALLOW)
        for name in DENIED:
            try:
                flt.add_rule(sc.ERRNO(errno.EPERM), name)
            except Exception:  # a syscall this architecture does not have
                continue
        me = os.getpid()
        flt.add_rule(sc.ERRNO(errno.EPERM), "kill", sc.Arg(0, sc.NE, me))
        flt.add_rule(sc.ERRNO(errno.EPERM), "tgkill", sc.Arg(0, sc.NE, me))
        flt.add_rule(sc.ERRNO(errno.EPERM), "tkill")
        flt.set_attr(sc.Attr.CTL_TSYNC, 1)  # every thread (torch's included), not only this one
    except Exception as exc:
        return f"not applied: {type(exc).__name__}: {exc}"
    return flt


def _load(filter_: Any) -> str:
    if isinstance(filter_, str):
        return filter_
    try:
        filter_.load()
    except Exception as exc:
        return f"not applied: {type(exc).__name__}: {exc}"
    return "applied"
