"""How much of a running request a streaming client may see: the holdback rule.

A mod may erase up to `max_backtrack` of its latest tokens, so those are held back until the
request ends; a mod that declares nothing is held back entirely. Text is also held while it ends
in an incomplete UTF-8 character or could still become a stop string. If a mod erases more than
it declared (the engine reports the lowest the output went), the stream ends with an error
rather than contradict text the client already has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quote_serving.runtime.requests import GenerationRequest, Snapshot

__all__ = ["HoldbackViolation", "StreamCursor", "cursor_for"]


class HoldbackViolation(Exception):
    """The mod erased tokens that were already streamed."""


@dataclass
class StreamCursor:
    tokenizer: Any
    holdback: int | None  # None: hold everything until the end
    stops: list[str] = field(default_factory=list)
    mod_name: str | None = None
    released: int = 0  # tokens whose text has been sent
    sent: str = ""

    def delta(self, snapshot: Snapshot) -> str:
        """The new text the client may receive now (possibly empty)."""
        if snapshot.low_water < self.released:
            raise HoldbackViolation(
                f"mod {self.mod_name!r} erased text that was already streamed (it declared max_backtrack="
                f"{self.holdback}); declare a larger max_backtrack in @mod(...)"
            )
        if snapshot.finished:
            text = snapshot.text or ""
            self.released = len(snapshot.output)
        else:
            text = self._stable_text(snapshot.output)
        if not text.startswith(self.sent):
            if snapshot.finished:
                raise HoldbackViolation(f"mod {self.mod_name!r} changed text that was already streamed")
            return ""
        new, self.sent = text[len(self.sent) :], text
        return new

    def _stable_text(self, output: tuple[int, ...]) -> str:
        if self.holdback is None:
            return self.sent
        releasable = max(self.released, len(output) - self.holdback)
        text: str = self.tokenizer.decode(list(output[:releasable]))
        text = text.rstrip("\ufffd")  # an incomplete multi-byte character: wait for the rest
        if self.stops:
            text = text[: max(len(self.sent), len(text) - max(len(s) for s in self.stops) + 1)]
        self.released = releasable
        return text


def cursor_for(tokenizer: Any, request: GenerationRequest) -> StreamCursor:
    """A cursor for a request: a mod's declared max_backtrack, or 0 without a mod."""
    mod = request.mod
    holdback = mod.max_backtrack if mod is not None else 0
    return StreamCursor(tokenizer, holdback, list(request.params.stop), mod.name if mod else None)
