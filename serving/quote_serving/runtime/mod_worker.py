"""A mod worker: one tenant's mods, in a confined process of their own (`mod_isolation=process`).

Started by `runtime/mod_pool.py` as `python -I -m quote_serving.runtime.mod_worker CONFIG_JSON`
with a scrubbed environment. At start, before any mod is loaded, it loads the tokenizer and torch,
then confines itself (each layer it cannot apply is reported in its `ready` frame and logged by the
engine):

    rlimits        RLIMIT_AS (QUOTE_MOD_MEMORY_MB), RLIMIT_CPU, RLIMIT_NOFILE, RLIMIT_CORE=0
    no_new_privs   prctl(PR_SET_NO_NEW_PRIVS)
    seccomp        (pyseccomp) EPERM for socket/connect/bind/listen, execve, ptrace,
                   process_vm_readv/writev, mount/umount/unshare/setns/chroot/pivot_root,
                   and kill/tgkill aimed at any process but itself
    landlock       not applied yet (named as missing)

Then it answers frames on its stdin/stdout (`mod_protocol`): `load` (a bundle → the mod's name,
max_backtrack, description) and `call` (an event → an action). A mod's prints go to stderr.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import sys
from typing import IO, Any

from quote_serving.runtime.mod_protocol import decode_header, encode_frame, split_prefix

PR_SET_NO_NEW_PRIVS = 38
DENIED = (
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "execve", "execveat", "ptrace",
    "process_vm_readv", "process_vm_writev", "mount", "umount2", "unshare", "setns", "chroot", "pivot_root",
)  # fmt: skip


def confine(config: dict[str, Any]) -> dict[str, str]:
    """Apply every layer; {layer: "applied" | why it is not}."""
    layers: dict[str, str] = {}
    try:
        memory = int(config.get("memory_mb") or 0)
        if memory > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory << 20, memory << 20))
        cpu = int(config.get("cpu_s") or 0)
        if cpu > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        layers["rlimits"] = "applied"
    except (ValueError, OSError) as exc:
        layers["rlimits"] = f"not applied: {exc}"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        layers["no_new_privs"] = "applied"
    else:
        layers["no_new_privs"] = f"not applied: {os.strerror(ctypes.get_errno())}"
    layers["seccomp"] = _seccomp()
    layers["landlock"] = "not applied: not implemented yet"
    return layers


def _seccomp() -> str:
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
        flt.load()
    except Exception as exc:
        return f"not applied: {type(exc).__name__}: {exc}"
    return "applied"


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Worker:
    def __init__(self, config: dict[str, Any], out: IO[bytes]) -> None:
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.tokenizer: Any = None
        if config.get("tokenizer_dir"):
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(config["tokenizer_dir"])
        self.out = out
        self.mods: dict[str, Any] = {}
        self.conversations: dict[str, tuple[list[Any], list[Any]]] = {}

    def send(self, header: dict[str, Any], blob: bytes = b"") -> None:
        self.out.write(encode_frame(header, blob))
        self.out.flush()

    def handle(self, header: dict[str, Any], blob: bytes) -> None:
        from quote_mod_sdk.serialize import load_mod

        op = header.get("op")
        try:
            if op == "load":
                mod = load_mod(header["bundle"])
                self.mods[str(header["digest"])] = mod
                self.send(
                    {"ok": True, "name": mod.name, "max_backtrack": mod.max_backtrack, "description": mod.description}
                )
            elif op == "call":
                self.call(header, blob)
            else:
                self.send({"ok": False, "kind": "protocol", "error": f"unknown op {op!r}"})
        except BaseException as exc:  # the mod's failure, reported; the worker lives on
            self.send({"ok": False, "kind": "exception", "error": f"{type(exc).__name__}: {exc}"[:2000]})

    def call(self, header: dict[str, Any], blob: bytes) -> None:
        from quote_mod_sdk.actions import ActionBuilder
        from quote_mod_sdk.conversation import conversation_scope
        from quote_mod_sdk.errors import InvalidActionError

        mod = self.mods[str(header["digest"])]
        event = self.event(header["event"], blob)
        rid = event.request_id
        if "messages" in header:
            self.conversations[rid] = (header.get("messages") or [], header.get("tools") or [])
        messages, tools = self.conversations.get(rid, ([], []))
        if type(event).__name__ == "Finished":
            self.conversations.pop(rid, None)
        try:
            with conversation_scope(rid, messages, tools):
                action = mod(event, ActionBuilder(), self.tokenizer)
        except InvalidActionError as exc:
            self.send({"ok": False, "kind": "invalid_action", "error": str(exc)[:2000]})
            return
        self.send(*self.encode_action(action))

    def event(self, data: dict[str, Any], blob: bytes) -> Any:
        from quote_mod_sdk import events
        from quote_mod_sdk.tensor import as_logits_row

        kind, rid, step = data["kind"], str(data["request_id"]), int(data["step"])
        if kind == "Prefilled":
            info = events.ContextInfo(tokens=list(data["tokens"]), _prompt_len=int(data["prompt_len"]))
            return events.Prefilled(
                rid, step, int(data["max_steps"]), str(data["prefilled_text"]), info, int(data["tokens_so_far_len"])
            )
        if kind == "ForwardPass":
            row = self.torch.frombuffer(bytearray(blob), dtype=self.torch.float32)
            return events.ForwardPass(rid, step, as_logits_row(row))
        if kind == "Sampled":
            return events.Sampled(rid, step, int(data["sampled_token"]))
        if kind == "Added":
            return events.Added(
                rid, step, list(data["added_tokens"]), bool(data["forced"]), int(data["tokens_so_far_len"])
            )
        if kind == "Finished":
            return events.Finished(rid, step, str(data["reason"]), list(data["output"]))
        raise ValueError(f"unknown event {kind!r}")

    def encode_action(self, action: Any) -> tuple[dict[str, Any], bytes]:
        from quote_mod_sdk import actions as a
        from quote_mod_sdk.tensor import to_numpy

        out: dict[str, Any] = {"ok": True, "action": a.action_name(action)}
        blob = b""
        if isinstance(action, (a.AdjustPrefill, a.ForceTokens, a.ForceOutput)):
            out["tokens"] = [int(t) for t in action.tokens]
            if isinstance(action, a.AdjustPrefill):
                out["max_steps"] = action.max_steps
        elif isinstance(action, a.AdjustLogits):
            out["token_temp"] = action.token_temp
            if action.logits is not None:
                blob = to_numpy(action.logits).astype("float32").reshape(-1).tobytes()
                out["logits"] = True
        elif isinstance(action, a.Backtrack):
            out["n"], out["reinject"] = action.n, action.reinject_tokens
        elif isinstance(action, a.ToolCalls):
            out["calls"] = action.calls
        elif isinstance(action, a.EmitError):
            out["message"] = action.message
        return out, blob


def main() -> None:
    config = json.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a mod's print() must never corrupt the protocol
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    worker = Worker(config, out)
    layers = confine(config)
    worker.send({"ok": True, "ready": True, "layers": layers, "pid": os.getpid()})
    while True:
        prefix = _read_exact(stdin, 8)
        if prefix is None:
            return
        header_len, blob_len = split_prefix(prefix)
        header = _read_exact(stdin, header_len)
        blob = _read_exact(stdin, blob_len) if blob_len else b""
        if header is None or blob is None:
            return
        worker.handle(decode_header(header), blob)


if __name__ == "__main__":
    main()
