"""The README's code examples run as written (against a real `quote serve`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_mod_registers_and_serves(server, tokenizer, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    mod_file, register, simulate = python_blocks()
    (tmp_path / "no_dash.py").write_text(mod_file)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("no_dash", None)
    namespace: dict[str, Any] = {"print": lambda *a, **k: None}
    # This server runs the tiny model (tests/real_model runs the block as written on the default one).
    exec(register.replace("http://127.0.0.1:8000", server.base_url).replace('"smollm2/', '"quote-tiny/'), namespace)
    assert namespace["reply"].model == "quote-tiny/no_dash"
    exec(simulate, {"tokenizer": tokenizer, "no_dash": namespace["no_dash"]})
