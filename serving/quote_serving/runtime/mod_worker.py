"""A mod worker: one tenant's mods, in a confined process of their own (`mod_isolation=process`).

Started by `runtime/mod_process.py` as `python -I -m quote_serving.runtime.mod_worker CONFIG_JSON`
with a scrubbed environment and one inherited descriptor, the `RowSlots` memfd. At start, before
any mod is loaded, it loads torch, the SDK and the tokenizer, then confines itself
(`mod_confine`: priority, rlimits, no_new_privs, Landlock, seccomp); each layer it cannot apply
is reported in its `ready` frame and logged by the engine.

Then it answers frames on its stdin/stdout (`mod_protocol`), one answer per frame, in order:
`load` (a bundle → the mod's name, max_backtrack, description) and `call` (an event → an
action). A ForwardPass row arrives in the IN slot the call names (`event.logits` is a zero-copy
view of it) and an adjusted row leaves through the OUT slot of the same pair; rows too large for
a slot, or sent when no pair was free, ride in the frame. The view is valid for its call: a later
call's row overwrites it, so a mod that keeps a row past its call keeps `.clone()` of it. A
call may carry `then`, the events the engine fires next if the mod answers noop (a ForwardPass's
Sampled and Added for the token the engine sampled ahead; a Sampled's Added): the worker runs
each at once while the answer before it is noop and sends one frame per answer, so a step whose
mod lets everything stand costs one round trip. A mod's prints go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

from quote_serving.runtime.mod_confine import confine
from quote_serving.runtime.mod_protocol import decode_header, encode_frame, split_prefix
from quote_serving.runtime.mod_slots import DEFAULT_CAPACITY, DEFAULT_PAIRS, RowSlots


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Worker:
    """The worker's state: loaded mods, each request's conversation, the row slots."""

    def __init__(self, config: dict[str, Any], out: IO[bytes]) -> None:
        import torch

        import quote_mod_sdk.strategies  # noqa: F401  # imported before Landlock, like everything a mod uses
        from quote_mod_sdk import actions, conversation, errors, events, serialize, tensor

        # Bound once: the per-call path below runs every step of every request.
        self.actions, self.events, self.errors, self.tensor = actions, events, errors, tensor
        self.load_mod, self.scope = serialize.load_mod, conversation.conversation_scope

        torch.set_num_threads(1)
        _warm_up(torch)
        self.torch = torch
        self.slots = RowSlots(
            int(config["rows_fd"]),
            int(config.get("row_capacity") or DEFAULT_CAPACITY),
            int(config.get("row_pairs") or DEFAULT_PAIRS),
        )
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
        op = header.get("op")
        try:
            if op == "load":
                mod = self.load_mod(header["bundle"])
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
        mod = self.mods[str(header["digest"])]
        pair = header["event"].get("slot")
        pair = pair if self.slots.has_pair(pair) else None
        event = self.event(header["event"], blob, pair)
        rid = event.request_id
        if "messages" in header:
            self.conversations[rid] = (header.get("messages") or [], header.get("tools") or [])
        messages, tools = self.conversations.get(rid, ([], []))
        if type(event).__name__ == "Finished":
            self.conversations.pop(rid, None)
        with self.scope(rid, messages, tools):
            answer = self.answer(mod, event, pair)
            self.send(*answer)
            for then in header.get("then") or ():  # each runs only while the one before answered noop
                if not (answer[0].get("ok") and answer[0].get("action") == "noop"):
                    return
                try:
                    follow = self.event(then, b"", None)
                except BaseException as exc:
                    self.send({"ok": False, "kind": "exception", "error": f"{type(exc).__name__}: {exc}"[:2000]})
                    return
                answer = self.answer(mod, follow, None)
                self.send(*answer)

    def answer(self, mod: Any, event: Any, pair: int | None) -> tuple[dict[str, Any], bytes]:
        """The mod's answer to one event, as a frame (its failure too: the worker lives on)."""
        try:
            return self.encode_action(mod(event, self.actions.ActionBuilder(), self.tokenizer), pair)
        except self.errors.InvalidActionError as exc:
            return {"ok": False, "kind": "invalid_action", "error": str(exc)[:2000]}, b""
        except BaseException as exc:
            return {"ok": False, "kind": "exception", "error": f"{type(exc).__name__}: {exc}"[:2000]}, b""

    def event(self, data: dict[str, Any], blob: bytes, pair: int | None) -> Any:
        events = self.events
        kind, rid, step = data["kind"], str(data["request_id"]), int(data["step"])
        if kind == "Prefilled":
            info = events.ContextInfo(tokens=list(data["tokens"]), _prompt_len=int(data["prompt_len"]))
            return events.Prefilled(
                rid, step, int(data["max_steps"]), str(data["prefilled_text"]), info, int(data["tokens_so_far_len"])
            )
        if kind == "ForwardPass":
            n = data.get("row")
            if isinstance(n, int) and self.slots.fits(n) and pair is not None:
                row = self.torch.from_numpy(self.slots.input_view(n, pair))  # zero-copy: the IN slot itself
            else:
                row = self.torch.frombuffer(bytearray(blob), dtype=self.torch.float32)
            return events.ForwardPass(rid, step, self.tensor.as_logits_row(row))
        if kind == "Sampled":
            return events.Sampled(rid, step, int(data["sampled_token"]))
        if kind == "Added":
            return events.Added(
                rid, step, list(data["added_tokens"]), bool(data["forced"]), int(data["tokens_so_far_len"])
            )
        if kind == "Finished":
            return events.Finished(rid, step, str(data["reason"]), list(data["output"]))
        raise ValueError(f"unknown event {kind!r}")

    def encode_action(self, action: Any, pair: int | None) -> tuple[dict[str, Any], bytes]:
        a = self.actions
        out: dict[str, Any] = {"ok": True, "action": a.action_name(action)}
        blob = b""
        if isinstance(action, (a.AdjustPrefill, a.ForceTokens, a.ForceOutput)):
            out["tokens"] = [int(t) for t in action.tokens]
            if isinstance(action, a.AdjustPrefill):
                out["max_steps"] = action.max_steps
        elif isinstance(action, a.AdjustLogits):
            out["token_temp"] = action.token_temp
            if action.logits is not None:
                n = None if pair is None else self.slots.put_output(action.logits, pair)
                if n is not None:
                    out["logits"], out["n"] = "slot", n
                else:  # larger than a slot: piped
                    blob = self.tensor.to_numpy(action.logits).astype("float32").reshape(-1).tobytes()
                    out["logits"] = True
        elif isinstance(action, a.Backtrack):
            out["n"], out["reinject"] = action.n, action.reinject_tokens
        elif isinstance(action, a.ToolCalls):
            out["calls"] = action.calls
        elif isinstance(action, a.EmitError):
            out["message"] = action.message
        return out, blob


def _warm_up(torch: Any) -> None:
    """Run what mods commonly call once, so lazy initialisation happens before Landlock."""
    row = torch.zeros(16)
    row.clone()[3] = 1.0
    torch.softmax(row, -1).topk(2)
    torch.from_numpy(row.numpy().copy()).argmax()


def main() -> None:
    try:
        serve(json.loads(sys.argv[1]))
    except BrokenPipeError:  # the engine closed the pipes (it stopped, or dropped this worker)
        os._exit(0)


def serve(config: dict[str, Any]) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a mod's print() must never corrupt the protocol
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    worker = Worker(config, out)
    sys.dont_write_bytecode = True  # nothing is writable from here on
    layers = confine(config, [config["tokenizer_dir"]] if config.get("tokenizer_dir") else [])
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
