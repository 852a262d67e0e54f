"""Landlock for a mod worker: read-only access to what Python needs, no TCP, no signals out.

Applied by `mod_worker` after the interpreter, numpy, torch and the tokenizer are loaded and
before any mod code runs (raw syscalls via ctypes; the kernel's ABI version decides what is
handled):

    ABI ≥ 1   filesystem: every access right is handled; the only rules grant read (+ execute for
              libraries) beneath the Python installation, sys.path, the packages already imported,
              the directories of every mapped shared library and the tokenizer dir — nothing
              writable, so /etc, /proc/<engine>, the engine's cwd and every write are refused
    ABI ≥ 4   network: TCP bind and connect handled with no rule: refused (seccomp refuses
              sockets too; this holds should a socket ever be inherited)
    ABI ≥ 6   scopes: no signals to, and no abstract unix sockets of, processes outside the domain

Landlock restricts the calling thread and every thread it starts later; the worker applies it
on its main thread, where all mod code runs, before a mod can start threads of its own.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

__all__ = ["abi_version", "apply_landlock", "readable_paths"]

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}  # ABI 4 adds no fs right
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | (1 << 14) | (1 << 15)  # rights a rule on a file may hold
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]
    _fields_ += [("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(*args: object) -> int:
    result = int(_libc.syscall(*args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or disabled."""
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def readable_paths(extra: Iterable[str] = ()) -> list[str]:
    """Where the worker may read: Python, sys.path, imported packages, mapped libraries, `extra`."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path, *extra}
    for name, module in list(sys.modules.items()):
        if "." in name:
            continue
        paths.update(getattr(module, "__path__", None) or ())  # packages (editable installs included)
        file = getattr(module, "__file__", None)
        if file:
            paths.add(file)
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and os.path.isfile(parts[5].strip()):  # not "/memfd:… (deleted)"
                    paths.add(os.path.dirname(parts[5].strip()))
    except OSError:
        pass
    paths.update(("/etc/ld.so.cache", "/dev/null", "/dev/urandom"))  # dlopen of a new library; os helpers
    paths.update(("/proc/cpuinfo", "/sys/devices/system/cpu"))  # torch's cpuinfo, read lazily on first use
    return sorted(p for p in paths if p and p != "/" and os.path.exists(p))  # never the whole tree


def apply_landlock(read: Iterable[str]) -> str:
    """Confine this thread (and threads it starts) to reading `read`; "applied" or why not."""
    abi = abi_version()
    if abi < 1:
        return "unavailable: the kernel offers no Landlock (disabled, or older than 5.13)"
    fs = _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]
    attr = _RulesetAttr(fs, _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0, 0)
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
    try:
        size = ctypes.c_size_t(ctypes.sizeof(attr))  # older kernels accept it: the fields they lack are 0
        ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), size, ctypes.c_uint32(0))
    except OSError as exc:
        return f"unavailable: landlock_create_ruleset failed ({exc.strerror})"
    try:
        for path in read:
            _allow(ruleset, path, _READ_FILE | _READ_DIR | _EXECUTE)
        _syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    except OSError as exc:
        return f"unavailable: landlock_restrict_self failed ({exc.strerror})"
    finally:
        os.close(ruleset)
    return "applied"


def _allow(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # gone since it was listed: nothing to allow
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS
        rule = _PathBeneathAttr(access, fd)
        kind = ctypes.c_int(_RULE_PATH_BENEATH)
        _syscall(_ADD_RULE, ctypes.c_int(ruleset), kind, ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)
