"""`@mod`: turns a handler function into a `Mod` that validates every action it returns.

The handler's arity is read once from its signature — `(event, actions, tokenizer)` or
`(event, actions)` — never by calling it and retrying on `TypeError` (which would hide real
TypeErrors raised inside the handler and run its side effects twice).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, overload

from quote_mod_sdk.actions import Action, ActionBuilder, validate_action
from quote_mod_sdk.errors import QuoteModError

__all__ = ["ACTIONS", "ActionBuilder", "Mod", "ModCallable", "create_mod", "mod"]

ACTIONS = ActionBuilder()
Handler = Callable[..., Any]
ModCallable = Callable[..., Action]


def _handler_arity(fn: Handler) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:
        raise QuoteModError(f"cannot read the signature of {fn!r}: {exc}") from exc
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(positional) >= 3 and len(required) <= 3:
        return 3
    if len(positional) == 2 or (len(positional) > 2 and len(required) == 2):
        return 2
    raise QuoteModError(
        f"mod handler {getattr(fn, '__name__', fn)!r} must take (event, actions, tokenizer) or (event, actions)"
    )


class Mod:
    """A mod: a validated event handler plus what the runtime needs to know about it.

    `max_backtrack` is how many already-generated tokens the mod may erase at most; streaming
    holds back that many tokens. `None` means "unknown": the whole output is held until the end.
    """

    def __init__(
        self,
        fn: Handler,
        *,
        name: str | None = None,
        max_backtrack: int | None = None,
        description: str | None = None,
    ) -> None:
        if max_backtrack is not None and max_backtrack < 0:
            raise QuoteModError(f"max_backtrack must be >= 0 or None, got {max_backtrack}")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "mod"))
        self.max_backtrack = max_backtrack
        self.description = description if description is not None else (inspect.getdoc(fn) or "")
        self._arity = _handler_arity(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, event: Any, actions: Any = None, tokenizer: Any = None) -> Action:
        """`mod(event, actions, tokenizer)`, or the original SDK's `mod(event, tokenizer)`."""
        if actions is not None and not isinstance(actions, ActionBuilder):
            if tokenizer is not None:
                raise QuoteModError("call a mod as mod(event, tokenizer) or mod(event, actions, tokenizer)")
            actions, tokenizer = ActionBuilder(event), actions
        builder = actions if actions is not None else ACTIONS
        result = self.fn(event, builder, tokenizer) if self._arity == 3 else self.fn(event, builder)
        return validate_action(event, result)

    def __repr__(self) -> str:
        return f"<Mod {self.name!r} max_backtrack={self.max_backtrack}>"

    # The original SDK's `@mod` returns a plain function, and loaders written for it find mods in
    # a module with `inspect.isfunction(obj) and hasattr(obj, "__wrapped__")`. A Mod answers to
    # that check (isinstance reads `__class__`), while `type(m)` and `isinstance(m, Mod)` stay
    # true to what it is; `__code__` is the handler's, so `inspect.getfile(m)` works too.
    @property  # type: ignore[misc]  # object.__class__ is settable; a Mod's is fixed
    def __class__(self) -> type:
        return types.FunctionType

    @property
    def __code__(self) -> types.CodeType:
        code: types.CodeType = self.fn.__code__
        return code


@overload
def mod(fn: Handler, /) -> Mod: ...
@overload
def mod(
    fn: None = None, /, *, name: str | None = ..., max_backtrack: int | None = ..., description: str | None = ...
) -> Callable[[Handler], Mod]: ...
def mod(
    fn: Handler | None = None,
    /,
    *,
    name: str | None = None,
    max_backtrack: int | None = None,
    description: str | None = None,
) -> Mod | Callable[[Handler], Mod]:
    """Decorate a handler: `@mod` or `@mod(name="x", max_backtrack=8)`."""

    def wrap(target: Handler) -> Mod:
        if isinstance(target, Mod):
            target = target.fn
        return Mod(target, name=name, max_backtrack=max_backtrack, description=description)

    return wrap(fn) if fn is not None else wrap


def create_mod(handler: Handler) -> Mod:
    """The original SDK's undecorated spelling of `mod(handler)`."""
    return mod(handler)


def as_mod(obj: Any, *, name: str | None = None) -> Mod:
    """A `Mod` from a `Mod` or a plain handler callable (e.g. what `self_prompt_mod` returns)."""
    if isinstance(obj, Mod):
        return obj
    if callable(obj):
        return Mod(obj, name=name)
    raise QuoteModError(f"{obj!r} is not a mod: decorate a handler with @mod")
