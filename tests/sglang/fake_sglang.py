"""A CPU stand-in for the slice of SGLang 0.5.17's scheduler that Quote's plugin touches.

It keeps SGLang's bookkeeping model, so the plugin's hooks, the bridge, the plans and the ops run
unchanged against it: requests (`Req`-like: origin_input_ids, output_ids, kv_committed_len,
kv.kv_allocated_len, cache_protected_len, req_pool_idx, to_finish, reset_for_retract), a running
batch whose `seq_lens` says where the next decode writes, a req→slot table, a slot allocator and a
radix tree of cached prefixes. What it checks that SGLang would not: every forward first asserts
that the KV slots of each request hold exactly the tokens it is conditioned on (a wrong trim or
requeue fails loudly here instead of producing subtly wrong logits), and no slot is freed twice.

Logits come from a real (tiny) model run from scratch on the request's tokens, so tests compare
them with a from-scratch reference exactly. One iteration of `FakeScheduler.iterate` mirrors
`Scheduler.event_loop_normal`: recv → pick prefill (if any waiting) or decode → run_batch (sample
inside) → process_batch_result (stream_output inside), each through the real plugin hooks.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

from quote_serving.engine.sglang import plugin


@dataclass
class GenerateInput:
    rid: str
    input_ids: array
    max_new_tokens: int


@dataclass
class AbortInput:
    rid: str


@dataclass
class Finish:
    kind: str
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "matched" if self.kind == "stop" else "message": self.text}


class FakeApi:
    """`SGLangApi` for the fake: same calls, fake types."""

    def __init__(self, scheduler: FakeScheduler) -> None:
        self.scheduler = scheduler

    def release_kv_cache(self, req: FakeReq, tree_cache: FakeTree) -> None:
        self.scheduler.release(req, insert=True)

    def finish_reason(self, reason: str) -> Finish:
        return Finish("stop", f"quote:{reason}")

    def abort_input(self, rid: str) -> AbortInput:
        return AbortInput(rid)

    def generate_input(self, rid: str, prompt: list[int], max_new_tokens: int, vocab_size: int) -> GenerateInput:
        return GenerateInput(rid, array("q", prompt), max_new_tokens)


class FakeReq:
    def __init__(self, source: GenerateInput) -> None:
        self.rid = source.rid
        self.origin_input_ids = source.input_ids
        self.output_ids = array("q")
        self.max_new_tokens = source.max_new_tokens
        self.full_untruncated_fill_ids = array("q")
        self.to_finish: Any = None
        self.finished_reason: Any = None
        self.kv: Any = None
        self.kv_committed_len = 0
        self.cache_protected_len = 0
        self.req_pool_idx: int | None = None
        self.is_retracted = False
        self.inflight_middle_chunks = 0
        self.retraction_count = 0

    @property
    def seq(self) -> list[int]:
        return list(self.origin_input_ids) + list(self.output_ids)

    def finished(self) -> bool:
        return self.finished_reason is not None

    def reset_for_retract(self) -> None:
        assert self.kv is None, "expect it is already released"
        self.retraction_count += 1
        self.cache_protected_len = 0
        self.kv_committed_len = 0
        self.is_retracted = True


class FakeBatch:
    def __init__(self, reqs: list[FakeReq], decode: bool, extend_tokens: int = 0) -> None:
        self.reqs = reqs
        self.decode = decode
        self.forward_mode = SimpleNamespace(is_decode=lambda: self.decode)
        lens = [r.kv_committed_len for r in reqs]
        self.seq_lens = torch.tensor(lens, dtype=torch.int64)
        self.seq_lens_cpu = torch.tensor(lens, dtype=torch.int64)
        self.orig_seq_lens = torch.tensor(lens, dtype=torch.int32)
        self.seq_lens_sum: int | None = sum(lens)
        self.extend_num_tokens = extend_tokens
        self.batch_is_full = False

    def filter_batch(self, keep_indices: list[int] | None = None) -> None:
        if keep_indices is None:
            keep_indices = [i for i, r in enumerate(self.reqs) if not r.finished()]
        self.reqs = [self.reqs[i] for i in keep_indices]
        index = torch.tensor(keep_indices, dtype=torch.int64)
        self.seq_lens = self.seq_lens[index]
        self.seq_lens_cpu = self.seq_lens_cpu[index]
        self.orig_seq_lens = self.orig_seq_lens[index]


class FakeAllocator:
    def __init__(self, slots: int) -> None:
        self.free_slots = list(range(slots - 1, 0, -1))  # slot 0 is padding, as in SGLang
        self.token: dict[int, int] = {}

    def alloc(self, n: int) -> list[int]:
        assert len(self.free_slots) >= n, "fake KV pool exhausted"
        return [self.free_slots.pop() for _ in range(n)]

    def free_segment(self, slots: torch.Tensor, *, start_pos: int) -> None:
        for slot in slots.tolist():
            assert slot not in self.free_slots, f"slot {slot} freed twice"
            self.token.pop(slot, None)
            self.free_slots.append(slot)


@dataclass
class FakeTree:
    """Cached prefixes: each entry maps a token sequence to the slots holding its KV (never evicted)."""

    entries: list[tuple[tuple[int, ...], list[int]]] = field(default_factory=list)

    def match(self, tokens: list[int], limit: int) -> list[int]:
        best: list[int] = []
        for cached, slots in self.entries:
            n = 0
            while n < min(len(cached), limit) and cached[n] == tokens[n]:
                n += 1
            if n > len(best):
                best = slots[:n]
        return best

    def insert(self, tokens: list[int], slots: list[int]) -> None:
        self.entries.append((tuple(tokens), list(slots)))


class FakeScheduler:
    """See the module docstring; `model` gives logits, `bridge` is set by the runtime."""

    def __init__(self, model: Any, *, slots: int = 1 << 15, pool_rows: int = 256, max_len: int = 4200) -> None:
        self.model = model
        self.model_config = SimpleNamespace(vocab_size=int(model.config.vocab_size))
        self.page_size = 1
        self.token_to_kv_pool_allocator = FakeAllocator(slots)
        self.req_to_token_pool = SimpleNamespace(req_to_token=torch.zeros((pool_rows, max_len), dtype=torch.int32))
        self.free_rows = list(range(pool_rows - 1, 0, -1))
        self.tree_cache = FakeTree()
        self.waiting: list[FakeReq] = []
        self.running: FakeBatch | None = None
        self.requeued: list[str] = []
        self._emitted: list[int] = []
        # knobs for tests: SGLang capping max_new_tokens, aborting a running request, not scheduling
        self.cap_new_tokens: int | None = None
        self.abort_after: tuple[int, str] | None = None  # (decode steps, message)
        self.paused = False
        self._decodes = 0

    # ----- the event loop ----------------------------------------------------------------------
    def iterate(self) -> bool:
        """One scheduler iteration; False when there was nothing to run."""
        for item in plugin._recv_requests(lambda _: [], None):
            self._handle(item)
        batch = self._next_batch()
        if batch is None:
            plugin._maybe_sleep_on_idle(lambda _: None, self)
            return False
        plugin._run_batch(lambda _, b: self._forward(b), self, batch)
        plugin._process_batch_result(lambda _, b: self._process(b), self, batch)
        if not batch.decode:
            self._merge(batch)
        return True

    def _handle(self, item: Any) -> None:
        if isinstance(item, GenerateInput):
            req = FakeReq(item)
            if self.cap_new_tokens is not None:
                req.max_new_tokens = min(req.max_new_tokens, self.cap_new_tokens)
            self.waiting.append(req)
        elif isinstance(item, AbortInput):
            for req in [*self.waiting, *(self.running.reqs if self.running else [])]:
                if req.rid == item.rid:
                    req.to_finish = Finish("abort", "cancelled")
            for req in [r for r in self.waiting if r.rid == item.rid]:  # queued: SGLang reports it aborted
                self.waiting.remove(req)
                req.finished_reason = req.to_finish
                plugin._send_output(lambda *_: None, None, _abort_output(req.rid))

    def _next_batch(self) -> FakeBatch | None:
        if self.paused:
            return None
        if self.waiting:
            reqs, self.waiting = self.waiting, []
            extend = sum(self._prefill(req) for req in reqs)
            return FakeBatch(reqs, decode=False, extend_tokens=extend)
        if self.running is not None:
            self.running.filter_batch()
            self._maybe_abort(self.running)
            if self.running.reqs:
                self._prepare_decode(self.running)
                return self.running
        return None

    def _maybe_abort(self, batch: FakeBatch) -> None:
        """SGLang's update_running_batch when even one request cannot fit: abort it, tell the tokenizer."""
        self._decodes += 1
        if self.abort_after is None or self._decodes < self.abort_after[0] or not batch.reqs:
            return
        req = batch.reqs[0]
        req.finished_reason = Finish("abort", self.abort_after[1])
        self.release(req, insert=False)
        batch.filter_batch()
        plugin._send_output(lambda *_: None, None, _abort_output(req.rid, self.abort_after[1]))
        self.abort_after = None

    def _merge(self, batch: FakeBatch) -> None:
        batch.filter_batch()
        if not batch.reqs:
            return
        if self.running is None or not self.running.reqs:
            self.running = FakeBatch(batch.reqs, decode=True)
        else:
            self.running = FakeBatch([*self.running.reqs, *batch.reqs], decode=True)

    # ----- memory ------------------------------------------------------------------------------
    def _prefill(self, req: FakeReq) -> int:
        seq = self._fill_ids(req)
        prefix = self.tree_cache.match(seq, limit=len(seq) - 1)
        new = self.token_to_kv_pool_allocator.alloc(len(seq) - len(prefix))
        for pos, slot in enumerate(new, start=len(prefix)):
            self.token_to_kv_pool_allocator.token[slot] = seq[pos]
        req.req_pool_idx = self.free_rows.pop()
        self.req_to_token_pool.req_to_token[req.req_pool_idx, : len(seq)] = torch.tensor(prefix + new)
        req.kv = SimpleNamespace(kv_allocated_len=len(seq))
        req.kv_committed_len = len(seq)
        req.cache_protected_len = len(prefix)
        req.is_retracted = False
        return len(new)

    @staticmethod
    def _fill_ids(req: FakeReq) -> list[int]:
        """SGLang's Req._refresh_fill_ids: extend the cached fill ids by the new output tokens only."""
        have = len(req.full_untruncated_fill_ids) - len(req.origin_input_ids)
        if 0 <= have <= len(req.output_ids):
            req.full_untruncated_fill_ids.extend(req.output_ids[have:])
        else:
            req.full_untruncated_fill_ids = req.origin_input_ids + req.output_ids
        return list(req.full_untruncated_fill_ids)

    def _prepare_decode(self, batch: FakeBatch) -> None:
        for i, req in enumerate(batch.reqs):
            pos = int(batch.seq_lens[i])
            assert pos == req.kv_committed_len == int(batch.seq_lens_cpu[i]), "batch and request disagree"
            (slot,) = self.token_to_kv_pool_allocator.alloc(1)
            self.token_to_kv_pool_allocator.token[slot] = req.seq[pos]
            self.req_to_token_pool.req_to_token[req.req_pool_idx, pos] = slot
            req.kv_committed_len += 1
            req.kv.kv_allocated_len += 1
        batch.seq_lens = batch.seq_lens + 1
        batch.seq_lens_cpu = batch.seq_lens_cpu + 1
        batch.orig_seq_lens = batch.orig_seq_lens + 1
        batch.extend_num_tokens = 0

    def release(self, req: FakeReq, *, insert: bool) -> None:
        """SGLang's release_kv_cache: cache the KV'd tokens in the tree, free the request's row."""
        slots = self.req_to_token_pool.req_to_token[req.req_pool_idx, : req.kv_committed_len].tolist()
        if insert:
            self.tree_cache.insert(req.seq[: req.kv_committed_len], slots)
        self.free_rows.append(req.req_pool_idx)
        req.req_pool_idx = None
        req.kv = None

    def _add_request_to_queue(self, req: FakeReq, is_retracted: bool = False) -> None:
        self.requeued.append(req.rid)
        self.waiting.append(req)

    # ----- forward and results -----------------------------------------------------------------
    def _forward(self, batch: FakeBatch) -> None:
        rows = []
        for req in batch.reqs:
            self._check_kv(req)
            with torch.no_grad():
                rows.append(self.model(torch.tensor([req.seq])).logits[0, -1].float())
        logits = torch.stack(rows)
        output = SimpleNamespace(next_token_logits=logits)
        forward_batch = SimpleNamespace(rids=[r.rid for r in batch.reqs])
        emitted = plugin._sample(lambda *_: torch.argmax(logits, -1), None, output, forward_batch)
        self._emitted = emitted.tolist()

    def _check_kv(self, req: FakeReq) -> None:
        seq = req.seq
        assert req.kv_committed_len == len(seq), f"{req.rid}: KV for {req.kv_committed_len} of {len(seq)} tokens"
        slots = self.req_to_token_pool.req_to_token[req.req_pool_idx, : len(seq)].tolist()
        held = [self.token_to_kv_pool_allocator.token.get(s) for s in slots]
        assert held == seq, f"{req.rid}: KV holds {held}, the request is {seq}"

    def _process(self, batch: FakeBatch) -> None:
        for req, token in zip(batch.reqs, self._emitted):
            if req.finished() or req.is_retracted:
                continue
            req.output_ids.append(token)
            if req.to_finish is not None:
                req.finished_reason, req.to_finish = req.to_finish, None
            elif len(req.output_ids) >= req.max_new_tokens:
                req.finished_reason = Finish("length")
            if req.finished():
                self.release(req, insert=True)
        plugin._stream_output(lambda *_: None, None, batch.reqs, False)


class AbortReq(SimpleNamespace):
    """Named like SGLang's io_struct.AbortReq, which is how the bridge recognises it."""


def _abort_output(rid: str, message: str = "cancelled") -> Any:
    return AbortReq(rid=rid, finished_reason={"type": "abort", "message": message})
