"""The README's mod example runs exactly as written against the default `quote serve`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import Server
from tests.serving.test_readme import python_blocks

pytestmark = pytest.mark.real_model


def test_readme_mod_on_the_default_model(
    default_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod_file, register, _ = python_blocks()
    (tmp_path / "no_dash.py").write_text(mod_file)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("no_dash", None)
    namespace: dict[str, Any] = {"print": lambda *a, **k: None}
    exec(register.replace("http://127.0.0.1:8000", default_server.base_url), namespace)
    reply = namespace["reply"]
    assert reply.model == "smollm2/no_dash"
    text = reply.choices[0].message.content
    assert text and "—" not in text
