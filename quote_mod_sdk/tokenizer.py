"""The tokenizer a mod receives: the serving model's own, behind a small protocol."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Tokenizer", "tokenize"]


@runtime_checkable
class Tokenizer(Protocol):
    """What mods may rely on; Hugging Face tokenizers satisfy it as they are."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


def tokenize(text: str, tokenizer: Any, *, add_special_tokens: bool = False) -> list[int]:
    """Token ids of `text`: via `tokenizer.encode`, or a callable returning ids or `{"input_ids": ...}`.

    Any failure is a `RuntimeError` naming the cause, as in the original SDK.
    """
    if tokenizer is None:
        raise RuntimeError("Tokenizer is required when calling tokenize().")
    try:
        if hasattr(tokenizer, "encode"):
            return _ids(tokenizer.encode(text, add_special_tokens=add_special_tokens))
        if callable(tokenizer):
            encoded = tokenizer(text)
            return _ids(encoded["input_ids"] if isinstance(encoded, Mapping) and "input_ids" in encoded else encoded)
    except Exception as exc:
        raise RuntimeError(f"Tokenizer failed to encode text: {exc}") from exc
    raise RuntimeError("Tokenizer must provide encode(text, add_special_tokens=False) or return input_ids.")


def _ids(ids: Any) -> list[int]:
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"Unsupported input_ids type: {type(ids)!r}")
    return [int(t) for t in ids]
