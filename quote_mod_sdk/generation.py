"""One request's generation loop, engine-neutral: events in SPEC order, actions applied once.

Both the offline simulator (`quote_mod_sdk.testing`) and the serving `ModRuntime` drive requests
through this class, so the two cannot disagree on what an action means. A driver does:

    gen.prefill()                                # Prefilled → maybe adjust_prefill / end
    while not gen.finished:
        rollback_n, new_tokens = gen.take_sync()   # make the engine's sequence equal gen.context
        logits = engine.forward(...)               # one row for this request
        plan = gen.forward_pass(logits)            # ForwardPass → maybe force/backtrack/end
        if plan is not None:
            gen.sampled(sample(plan))              # Sampled → Added → stop checks

A driver that answers many requests' mod calls at once (isolated mods: one round trip to a worker
process per call) uses the split-phase forms instead: `forward_pass_steps` and `sampled_steps`
are generators that yield each event the mod must answer and take the answer (an action, or the
exception the call raised) by `send`; `forward_pass` and `sampled` run the same steps with the
request's own invoker in this thread. Both forms apply actions with the same code.

Everything a client can observe (tokens, erasures, tool calls, errors) is recorded in
`gen.trace`, which the runtime exports and the token-timeline page draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from quote_mod_sdk.actions import (
    NOOP,
    Action,
    AdjustLogits,
    AdjustPrefill,
    Backtrack,
    EmitError,
    ForceOutput,
    ForceTokens,
    Noop,
    ToolCalls,
    action_name,
)
from quote_mod_sdk.conversation import Message, conversation_scope
from quote_mod_sdk.errors import InvalidActionError, ModFailedError
from quote_mod_sdk.events import (
    Added,
    ContextInfo,
    Finished,
    ForwardPass,
    ModEvent,
    Prefilled,
    Sampled,
    top_k_logprobs,
)
from quote_mod_sdk.mod import ACTIONS, ActionBuilder, Mod
from quote_mod_sdk.tensor import as_logits_row
from quote_mod_sdk.tokenizer import Tokenizer

__all__ = [
    "Generation",
    "GenerationParams",
    "ModCall",
    "ModInvoker",
    "RequestTrace",
    "SamplePlan",
    "Steps",
    "TokenRecord",
    "call_mod",
]

ModInvoker = Callable[[Mod, ModEvent, ActionBuilder, Any], Action]
# A split-phase step: yields the events a mod must answer, is sent each answer (the action, or the
# exception the call raised), and returns the step's result.
Steps = Generator[ModEvent, "Action | Exception", Any]


def call_mod(mod: Mod, event: ModEvent, actions: ActionBuilder, tokenizer: Any) -> Action:
    """The default invoker: call in this thread, no time budget (the runtime adds one)."""
    return mod(event, actions, tokenizer)


@dataclass(slots=True)
class GenerationParams:
    """What bounds one request: token budget, stop tokens/strings, trace detail."""

    max_tokens: int = 256
    stop_token_ids: frozenset[int] = frozenset()
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0
    temperature: float = 1.0

    @property
    def step_cap(self) -> int:
        # Backtracking mods can loop without growing the output; this bounds the work.
        return 4 * self.max_tokens + 16


@dataclass(slots=True)
class SamplePlan:
    """Sample this step from `logits` (a row); `temperature` overrides the request's if set."""

    logits: Any
    temperature: float | None = None


@dataclass(slots=True)
class TokenRecord:
    """One token as it entered the output: sampled or forced, and whether it was later erased."""

    step: int
    token: int
    forced: bool
    erased: bool = False
    logprob: float | None = None
    stop: bool = False  # the stop/eos token that ended the request (not part of the output)
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class ModCall:
    """One mod invocation: which event, what it returned, how long it took."""

    step: int
    event: str
    action: str
    latency_ms: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class RequestTrace:
    """Everything that happened to one request, in order."""

    request_id: str
    mod: str | None
    prompt_tokens: list[int] = field(default_factory=list)
    tokens: list[TokenRecord] = field(default_factory=list)
    mod_calls: list[ModCall] = field(default_factory=list)
    finish_reason: str | None = None
    error: str | None = None


def _action_detail(action: Action) -> dict[str, Any]:
    if isinstance(action, (ForceTokens, ForceOutput, AdjustPrefill)):
        return {"tokens": len(action.tokens)}
    if isinstance(action, Backtrack):
        return {"n": action.n, "reinject": len(action.reinject_tokens or ())}
    if isinstance(action, ToolCalls):
        return {"tools": [c["function"]["name"] for c in action.calls]}
    if isinstance(action, AdjustLogits):
        return {"token_temp": action.token_temp} if action.token_temp is not None else {}
    return {}


class Generation:
    """The state machine of one request; see the module docstring for the driver loop."""

    def __init__(
        self,
        *,
        request_id: str,
        prompt_tokens: Sequence[int],
        tokenizer: Tokenizer,
        vocab_size: int,
        mod: Mod | None = None,
        params: GenerationParams | None = None,
        messages: Sequence[Message] | None = None,
        invoke: ModInvoker = call_mod,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.request_id = request_id
        self.prompt = list(prompt_tokens)
        self.output: list[int] = []
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.mod = mod
        self.params = params or GenerationParams()
        self.messages = messages
        self.tools = tools  # the request's tool schemas, for `get_schemas()`
        self._invoke = invoke
        self.step = 0
        self.finished = False
        self.finish_reason: str | None = None
        self.error: ModFailedError | None = None
        self.tool_calls: list[dict[str, Any]] | None = None
        self.trace = RequestTrace(request_id, mod.name if mod else None)
        self._live: list[int] = []  # indices into trace.tokens of tokens still in the output
        self._synced_len = 0  # how much of `context` the engine already holds
        self._sync_floor = 0  # shortest `context` got since the last sync
        self._pending_top: list[tuple[int, float]] = []
        self._stop_cut: int | None = None  # char offset where a stop string begins
        self.low_water = 0  # shortest the output got since the driver last reset it (streaming)

    # ----- what the driver reads -------------------------------------------------------------
    @property
    def context(self) -> list[int]:
        return self.prompt + self.output

    @property
    def max_steps(self) -> int:
        return self.params.max_tokens

    def take_sync(self) -> tuple[int, list[int]]:
        """(tokens to roll back, tokens to append) that bring the engine's sequence to `context`.

        The engine keeps what is still shared: everything below the shortest the context got
        since the last sync (a backtrack may have erased tokens and reinjected others).
        """
        rollback, tokens = self.peek_sync()
        self._synced_len = self._sync_floor = len(self.prompt) + len(self.output)
        return rollback, tokens

    def peek_sync(self) -> tuple[int, list[int]]:
        """What `take_sync` would return now, without taking it (a driver that ran ahead checks it)."""
        keep = min(self._synced_len, self._sync_floor)
        return self._synced_len - keep, self.context[keep:]

    def text(self) -> str:
        text = self.tokenizer.decode(self.output)
        return text if self._stop_cut is None else text[: self._stop_cut]

    # ----- events ----------------------------------------------------------------------------
    def prefill(self) -> None:
        self.trace.prompt_tokens = list(self.prompt)
        event = Prefilled(
            request_id=self.request_id,
            step=0,
            max_steps=self.params.max_tokens,
            prefilled_text=self.tokenizer.decode(self.prompt),
            context_info=ContextInfo(tokens=list(self.prompt), _prompt_len=len(self.prompt)),
            tokens_so_far_len=len(self.prompt),
        )
        action = self._call(event)
        if isinstance(action, AdjustPrefill):
            if not action.tokens:
                self._fail("adjust_prefill returned an empty prompt; a prompt needs at least one token")
            elif self._check_tokens(action.tokens, "adjust_prefill"):
                self.prompt = list(action.tokens)
                self.trace.prompt_tokens = list(self.prompt)
                if action.max_steps is not None:
                    self.params.max_tokens = action.max_steps
        else:
            self._apply_terminal(action)
        if not self.finished and self.params.max_tokens <= 0:
            self.finish("length")

    def forward_pass(self, logits: Any) -> SamplePlan | None:
        """Deliver ForwardPass; returns what to sample from, or None when no sampling happens."""
        plan: SamplePlan | None = self._drive(self.forward_pass_steps(logits))
        return plan

    def forward_pass_steps(self, logits: Any) -> Steps:
        """`forward_pass` as split-phase steps (see the module docstring); returns the plan."""
        if self.finished:
            return None
        self.step += 1
        if self.step > self.params.step_cap:
            self.finish("length")
            return None
        row = as_logits_row(logits)
        if self.params.top_logprobs:
            self._pending_top = top_k_logprobs(row, self.params.top_logprobs)
        action = yield from self._calling(ForwardPass(request_id=self.request_id, step=self.step, logits=row))
        if isinstance(action, Noop):
            return SamplePlan(row)
        if isinstance(action, AdjustLogits):
            return self._adjusted(row, action)
        yield from self._apply_edit(action)
        return None

    def sampled(self, token: int, logprob: float | None = None) -> None:
        """Deliver Sampled for the token the driver sampled, then commit it (unless replaced)."""
        self._drive(self.sampled_steps(token, logprob))

    def sampled_steps(self, token: int, logprob: float | None = None) -> Steps:
        """`sampled` as split-phase steps (see the module docstring)."""
        if self.finished:
            return None
        action = yield from self._calling(Sampled(request_id=self.request_id, step=self.step, sampled_token=int(token)))
        if isinstance(action, Noop):
            yield from self._append([int(token)], forced=False, logprob=logprob)
        else:
            yield from self._apply_edit(action)  # the sampled token is discarded: the mod replaced it
        return None

    def added_after_sampled(self, token: int) -> Added:
        """The Added event `sampled_steps(token)` yields next if the mod answers Sampled with noop:
        a driver may send both at once (one round trip) and check the match."""
        return self._added([int(token)], forced=False, pending=1)

    def after_noop_forward_pass(self, token: int) -> tuple[Sampled, Added]:
        """The Sampled and Added events the next step yields if the mod answers its ForwardPass
        with noop, `token` is what the driver samples from the unchanged row, and Sampled is
        answered with noop too: a driver that sampled ahead may send all three at once (one round
        trip per step) and check each match."""
        step = self.step + 1
        added = self._added([int(token)], forced=False, pending=1, step=step)
        return Sampled(request_id=self.request_id, step=step, sampled_token=int(token)), added

    def _added(self, tokens: list[int], *, forced: bool, pending: int = 0, step: int | None = None) -> Added:
        """The Added event for `tokens` once recorded (`pending`: how many of them are not yet)."""
        at = self.step if step is None else step
        return Added(self.request_id, at, list(tokens), forced, len(self.prompt) + len(self.output) + pending)

    def finish(self, reason: str) -> None:
        """End the request (idempotent) and tell the mod, whose answer no longer matters."""
        if self.finished:
            return
        self.finished = True
        self.finish_reason = reason
        self.trace.finish_reason = reason
        if self.mod is not None:
            event = Finished(self.request_id, self.step, reason, list(self.output))
            try:
                with conversation_scope(self.request_id, self.messages, self.tools):
                    self._invoke(self.mod, event, ACTIONS, self.tokenizer)
            except Exception:
                pass

    # ----- action application ----------------------------------------------------------------
    def _adjusted(self, row: Any, action: AdjustLogits) -> SamplePlan | None:
        logits = row if action.logits is None else action.logits
        size = logits.shape[-1] if hasattr(logits, "shape") and len(logits.shape) else None
        if size != row.shape[-1]:
            self._fail(f"adjust_logits returned a row of size {size}, expected {row.shape[-1]}")
            return None
        return SamplePlan(logits, action.token_temp)

    def _apply_edit(self, action: Action) -> Steps:
        """Actions that change the output without sampling: force, backtrack, or end."""
        if isinstance(action, ForceTokens):
            yield from self._append(action.tokens, forced=True)
        elif isinstance(action, Backtrack):
            self._backtrack(action.n)
            if action.reinject_tokens:
                yield from self._append(action.reinject_tokens, forced=True)
        else:
            self._apply_terminal(action)

    def _apply_terminal(self, action: Action) -> None:
        if isinstance(action, ForceOutput):
            if self._check_tokens(action.tokens, "force_output"):
                self._erase(len(self.output))
                self._record(action.tokens, forced=True)
                self.finish("stop")
        elif isinstance(action, ToolCalls):
            self.tool_calls = action.calls
            self.finish("tool_calls")
        elif isinstance(action, EmitError):
            self._fail(action.message, kind="emit_error")

    def _append(self, tokens: list[int], *, forced: bool, logprob: float | None = None) -> Steps:
        """Append tokens, fire Added, apply what it returns, then check stop conditions.

        As in the original engine, tokens an Added handler forces (or reinjects after a backtrack)
        join the output in this same step without an Added of their own: the handler knows what
        it forced, and the next event it sees is the next step's ForwardPass, whose logits follow
        them. A handler that forces on every Added so adds one forced run per step, never a loop;
        the engine still gets them as one extend with the next forward.
        """
        if not self._check_tokens(tokens, "force_tokens" if forced else "sampling"):
            return
        self._record(tokens, forced=forced, logprob=logprob)
        action = yield from self._calling(self._added(tokens, forced=forced))
        if isinstance(action, ForceTokens):
            if self._check_tokens(action.tokens, "force_tokens"):
                self._record(action.tokens, forced=True)
        elif isinstance(action, Backtrack):
            self._backtrack(action.n)
            reinject = action.reinject_tokens or []
            if self._check_tokens(reinject, "backtrack"):
                self._record(reinject, forced=True)
        elif not isinstance(action, Noop):
            self._apply_terminal(action)
        self._check_stop()

    def _backtrack(self, n: int) -> None:
        """Drop the last n output tokens; never the prompt, so n is capped at the output length."""
        if n > len(self.output):
            if self.trace.mod_calls:
                self.trace.mod_calls[-1].detail["clamped_to"] = len(self.output)
            n = len(self.output)
        self._erase(n)

    def _erase(self, n: int) -> None:
        for index in self._live[len(self._live) - n :]:
            self.trace.tokens[index].erased = True
        del self._live[len(self._live) - n :]
        del self.output[len(self.output) - n :]
        self.low_water = min(self.low_water, len(self.output))
        self._sync_floor = min(self._sync_floor, len(self.prompt) + len(self.output))

    def _record(self, tokens: list[int], *, forced: bool, logprob: float | None = None) -> None:
        top = [] if forced else self._pending_top
        for token in tokens:
            self._live.append(len(self.trace.tokens))
            self.trace.tokens.append(TokenRecord(self.step, token, forced, logprob=logprob, top_logprobs=top))
        self.output.extend(tokens)

    # ----- stop conditions -------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.finished:
            return
        stop_ids = self.params.stop_token_ids
        cut = next((i for i, t in enumerate(self.output) if t in stop_ids), None) if stop_ids else None
        if cut is not None:
            self.trace.tokens[self._live[cut]].stop = True
            self._erase(len(self.output) - cut - 1)
            del self._live[cut], self.output[cut]  # the stop token itself is not part of the output
            self.finish("stop")
        elif self.params.stop and self._stop_string_hit():
            self.finish("stop")
        elif len(self.output) >= self.params.max_tokens:
            self._erase(len(self.output) - self.params.max_tokens)
            self.finish("length")

    def _stop_string_hit(self) -> bool:
        longest = max(len(s) for s in self.params.stop)
        tail_tokens = self.output[-(4 * longest + 4) :]
        tail = self.tokenizer.decode(tail_tokens)
        if not any(s in tail for s in self.params.stop):
            return False
        text = self.tokenizer.decode(self.output)
        self._stop_cut = min(i for i in (text.find(s) for s in self.params.stop) if i >= 0)
        return True

    # ----- mod calls and failures ------------------------------------------------------------
    def _call(self, event: ModEvent) -> Action:
        action: Action = self._drive(self._calling(event))
        return action

    def _drive(self, steps: Steps) -> Any:
        """Run split-phase steps here, each event answered by this request's invoker."""
        try:
            event = next(steps)
            while True:
                event = steps.send(self._answer(event))
        except StopIteration as done:
            return done.value

    def _answer(self, event: ModEvent) -> Action | Exception:
        assert self.mod is not None  # `_calling` yields only when there is a mod
        try:
            with conversation_scope(self.request_id, self.messages, self.tools):
                return self._invoke(self.mod, event, ACTIONS, self.tokenizer)
        except Exception as exc:  # the steps turn it into the request's error
            return exc

    def _calling(self, event: ModEvent) -> Generator[ModEvent, Action | Exception, Action]:
        """One mod call: yield the event, take the answer, record it; a failure fails the request."""
        if self.mod is None or self.finished:
            return NOOP
        started = time.perf_counter()
        error: str | None = None
        action: Action
        answer = yield event
        if isinstance(answer, ModFailedError):
            action, error = NOOP, str(answer)
            self._fail_from(answer)
        elif isinstance(answer, InvalidActionError):
            action, error = NOOP, str(answer)
            self._fail(f"returned an invalid action: {answer}", kind="invalid_action")
        elif isinstance(answer, Exception):
            action, error = NOOP, f"{type(answer).__name__}: {answer}"
            self._fail(f"raised {type(answer).__name__}: {answer}", kind="exception")
        else:
            action = answer
        latency = (time.perf_counter() - started) * 1000
        name = action_name(action)
        self.trace.mod_calls.append(
            ModCall(self.step, type(event).__name__, name, latency, _action_detail(action), error)
        )
        return action

    def _check_tokens(self, tokens: Sequence[int], what: str) -> bool:
        bad = next((t for t in tokens if t >= self.vocab_size), None)
        if bad is not None:
            self._fail(f"{what} used token id {bad}, outside the vocabulary of size {self.vocab_size}")
            return False
        return True

    def _fail(self, message: str, *, kind: str = "invalid_action") -> None:
        name = self.mod.name if self.mod else "<none>"
        self._fail_from(ModFailedError(f"mod {name!r} failed at step {self.step}: {message}", mod=name, kind=kind))

    def _fail_from(self, exc: ModFailedError) -> None:
        if self.finished:
            return
        self.error = exc
        self.trace.error = str(exc)
        self.finish("error")
