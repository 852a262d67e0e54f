"""The only code that rewrites SGLang's scheduler objects: applying `SyncPlan`s, building inputs.

Every SGLang function this needs is reached through `SGLangApi` (imported lazily, pinned to the
version in `compat`), so the bookkeeping below runs in CPU tests against duck-typed fakes.

    finish   before SGLang processes the batch: `req.to_finish`, so its own finish path runs
             (KV inserted into the radix tree, request slot freed)
    trim     after: free the KV slots of the erased tail in place; shorten the request and its
             row of the running batch; the next decode feeds D[-1] (already relayed as `emit`)
    requeue  after: insert the request's KV into the radix tree and release it (SGLang's own
             `release_kv_cache`), reset it like a retraction, give it D as output, drop it from
             the batch and queue it again: its next prefill matches D's cached prefix
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from quote_serving.engine.sglang.rollback import SyncKind, SyncPlan

__all__ = ["SGLangApi", "SchedulerOps"]


class SGLangApi:
    """The SGLang functions and types the ops use (lazy imports; tests pass a fake)."""

    def release_kv_cache(self, req: Any, tree_cache: Any) -> None:
        from sglang.srt.mem_cache.common import release_kv_cache

        release_kv_cache(req, tree_cache, is_insert=True)

    def finish_reason(self, reason: str) -> Any:
        from sglang.srt.managers.schedule_batch import FINISH_MATCHED_STR

        return FINISH_MATCHED_STR(matched=f"quote:{reason}")

    def abort_input(self, rid: str) -> Any:
        from sglang.srt.managers.io_struct import AbortReq

        return AbortReq(rid=rid, abort_message="cancelled by Quote")

    def generate_input(self, rid: str, prompt: Sequence[int], max_new_tokens: int, vocab_size: int) -> Any:
        """A tokenized request as the tokenizer manager would send it; SGLang never samples it.

        Quote samples and stops the request itself, so SGLang gets no stop conditions
        (`ignore_eos`) and a length limit one past Quote's, which Quote always reaches first.
        """
        from sglang.srt.managers.io_struct import TokenizedGenerateReqInput
        from sglang.srt.sampling.sampling_params import SamplingParams

        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0, ignore_eos=True)
        params.normalize(None)
        params.verify(vocab_size)
        return TokenizedGenerateReqInput(
            rid=rid,
            input_text="",
            input_ids=array("q", prompt),
            input_embeds=None,
            mm_inputs=None,
            token_type_ids=None,
            sampling_params=params,
            return_logprob=False,
            logprob_start_len=-1,
            top_logprobs_num=0,
            token_ids_logprob=None,
            stream=False,
        )


class SchedulerOps:
    """Applies plans to SGLang's `Req`, `ScheduleBatch`, pools and radix tree."""

    def __init__(self, api: SGLangApi | None = None) -> None:
        self.api = api or SGLangApi()

    def finish(self, req: Any, reason: str) -> None:
        """Let SGLang finish `req` at this step (its normal path caches its KV and frees it)."""
        req.to_finish = self.api.finish_reason(reason)

    def apply_after_result(self, scheduler: Any, batch: Any, plans: Sequence[tuple[int, Any, SyncPlan]]) -> None:
        """Apply TRIM and REQUEUE plans `(row, req, plan)` once SGLang has processed `batch`."""
        for row, req, plan in plans:
            if plan.kind is SyncKind.TRIM:
                self.trim(scheduler, batch, row, req, plan)
        requeued = [(row, req, plan) for row, req, plan in plans if plan.kind is SyncKind.REQUEUE]
        if requeued:
            self.requeue(scheduler, batch, requeued)

    # ----- in-place trim ----------------------------------------------------------------------
    def trim(self, scheduler: Any, batch: Any, row: int, req: Any, plan: SyncPlan) -> None:
        """Free KV beyond `plan.kv_len` and make `req` hold `plan.context`, in the running batch."""
        new_len = plan.kv_len
        allocated = req.kv.kv_allocated_len
        if new_len < req.cache_protected_len:
            raise ValueError(f"trim to {new_len} would free radix-owned KV (protected {req.cache_protected_len})")
        if allocated > new_len:
            slots = scheduler.req_to_token_pool.req_to_token[req.req_pool_idx, new_len:allocated]
            scheduler.token_to_kv_pool_allocator.free_segment(slots, start_pos=new_len)
        req.kv_committed_len = new_len
        req.kv.kv_allocated_len = new_len
        _set_output(req, plan.context)
        batch.seq_lens[row] = new_len
        if batch.seq_lens_cpu is not None:
            batch.seq_lens_cpu[row] = new_len
        batch.orig_seq_lens[row] = new_len
        batch.seq_lens_sum = None  # recomputed by ForwardBatch.init_new

    # ----- requeue through the radix cache ----------------------------------------------------
    def requeue(self, scheduler: Any, batch: Any, plans: Sequence[tuple[int, Any, SyncPlan]]) -> None:
        """Cache each request's KV in the radix tree, reset it to `plan.context` and queue it again."""
        for _, req, plan in plans:
            self.api.release_kv_cache(req, scheduler.tree_cache)
            req.reset_for_retract()
            _set_output(req, plan.context)
        dropped = {row for row, _, _ in plans}
        batch.filter_batch(keep_indices=[i for i in range(len(batch.reqs)) if i not in dropped])
        batch.batch_is_full = False
        for _, req, _ in plans:
            scheduler._add_request_to_queue(req, is_retracted=True)


def _set_output(req: Any, context: Sequence[int]) -> None:
    """Make `req` hold `context` (its prompt never changes) and drop caches derived from the old output."""
    prompt_len = len(req.origin_input_ids)
    if list(req.origin_input_ids) != list(context[:prompt_len]):
        raise ValueError(f"request {req.rid!r}: a plan may not change the prompt")
    req.output_ids = array("q", context[prompt_len:])
    # SGLang extends this cache with only the new output tokens; an empty one makes it rebuild.
    req.full_untruncated_fill_ids = array("q")
