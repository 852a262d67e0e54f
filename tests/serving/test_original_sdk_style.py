"""A mod written for the original Quote SDK, unchanged, end to end through `quote serve`.

It is loaded the way people load scripts (`spec_from_file_location` + `exec_module`, never put
in `sys.modules`), serialized, registered over HTTP and called with the real `openai` client. It
uses the original's spellings: `mod_fn(event, tokenizer)`-callable `@mod`, `tokenize`,
`Added.tokens`, `backtrack(steps, tokens)` and `from max.driver import Tensor`.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from typing import Any

import httpx

ORIGINAL_STYLE = textwrap.dedent(
    """
    from quote_mod_sdk import Added, ForwardPass, mod, tokenize

    seen = {}

    @mod
    def bang_then_question(event, actions, tokenizer):
        bang = tokenize("!", tokenizer)[-1]
        if isinstance(event, ForwardPass):
            import numpy as np
            from max.driver import Tensor

            logits = event.logits.to_numpy()
            keep = logits[..., bang].copy()
            logits[...] = -1e9
            logits[..., bang] = keep
            return actions.adjust_logits(Tensor.from_numpy(logits))
        if isinstance(event, Added):
            count = seen.get(event.request_id, 0) + len(event.tokens)
            seen[event.request_id] = count
            if count == 4:
                return actions.backtrack(2, tokenize("?", tokenizer))
        return actions.noop()
    """
)


def _load_unregistered(tmp_path: Path) -> Any:
    path = tmp_path / "original_style_mod.py"
    path.write_text(ORIGINAL_STYLE)
    spec = importlib.util.spec_from_file_location("original_style_mod", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_original_style_mod_runs_unchanged_through_quote_serve(
    openai_client, http: httpx.Client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from quote_mod_sdk import serialize_mod

    module = _load_unregistered(tmp_path)
    payload = serialize_mod(module.bang_then_question, name="original-style")
    assert "from max.driver import Tensor" in payload["source"]
    response = http.post("/v1/mods", json=payload)
    assert response.status_code in (200, 201), response.text

    reply = openai_client.chat.completions.create(
        model="quote-tiny/original-style",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=5,
        temperature=0,
    )
    # 4 "!" sampled (only "!" allowed); the Added at 4 erases two and injects "?" (3 tokens
    # left), then two more "!" fill the 5-token budget.
    assert reply.choices[0].message.content == "!!?!!"
