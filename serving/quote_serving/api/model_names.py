"""Model-string parsing — the one place that decides what `model` in a request means.

    "<base>"                    the base model, no mod (base ids may contain "/")
    "<base>/<mod>"              that mod's default (latest) version
    "<base>/<mod>@<ref>"        a pinned version or alias

A string that names a served base model exactly never selects a mod, so
`Qwen/Qwen2.5-7B-Instruct` is a model, and `Qwen/Qwen2.5-7B-Instruct/no_apologies` is a mod on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from quote_mod_sdk import names

__all__ = ["MAX_MODEL_LENGTH", "InvalidModelError", "ModelRef", "UnknownModelError", "parse_model"]

MAX_MODEL_LENGTH = 512  # a base id (org/name) + "/" + a mod name (64) + "@" + a ref (128), with room


class UnknownModelError(LookupError):
    """No served base model is a prefix of the requested model string."""


class InvalidModelError(ValueError):
    """The model string names a mod or ref outside the grammar (quote_mod_sdk.names): a 400, never a lookup."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    base: str
    mod: str | None = None
    ref: str | None = None  # version or alias after "@"

    def __str__(self) -> str:
        if self.mod is None:
            return self.base
        return f"{self.base}/{self.mod}" + (f"@{self.ref}" if self.ref else "")


def parse_model(model: str, served: Iterable[str]) -> ModelRef:
    """Split a request's `model` into base model, mod and version against the served models."""
    if len(model) > MAX_MODEL_LENGTH or not model.isprintable():
        raise InvalidModelError(f"model must be at most {MAX_MODEL_LENGTH} printable characters")
    bases = sorted(set(served), key=len, reverse=True)
    if model in bases:
        return ModelRef(model)
    for base in bases:
        if model.startswith(base + "/"):
            rest = model[len(base) + 1 :]
            name, _, ref = rest.partition("@")
            if not name or "/" in name or ("@" in rest and not ref):
                break
            try:
                names.check_mod_lookup(name)
                if ref:
                    names.check_ref(ref)
            except names.InvalidName as exc:
                raise InvalidModelError(str(exc)) from None
            return ModelRef(base, name, ref or None)
    raise UnknownModelError(f"The model '{model}' does not exist or you do not have access to it.")
