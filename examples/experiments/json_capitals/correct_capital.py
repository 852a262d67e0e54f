"""A Python scorer: the answer names the expected capital (the prompt's `capital` field), JSON or not."""

from typing import Any


def score(text: str, fields: dict[str, Any]) -> bool:
    return str(fields["capital"]).lower() in text.lower()
