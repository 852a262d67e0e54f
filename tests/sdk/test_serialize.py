"""Bundles are source only, load in isolation, and behave exactly like the original mod."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest

from quote_mod_sdk import Mod, SerializationError, bundle_digest, load_mod, serialize_directory, serialize_mod
from quote_mod_sdk.testing import RandomLogits, Simulator

from .conftest import load_seed


def test_seed_registration_payload_has_the_documented_fields() -> None:
    skeleton = load_seed("skeleton")
    payload = serialize_mod(skeleton.my_mod, name="my_mod")
    assert set(payload) == {"language", "module", "entrypoint", "source", "name", "description"}
    assert payload["language"] == "python" and payload["entrypoint"] == "my_mod" and payload["name"] == "my_mod"
    assert "def my_mod(event, actions, tokenizer):" in payload["source"]
    json.dumps(payload)  # plain JSON


def test_loaded_bundle_behaves_like_the_original(tokenizer) -> None:  # type: ignore[no-untyped-def]
    original = load_seed("backtrack_phrase").backtrack_phrase
    loaded = load_mod(serialize_mod(original))
    assert isinstance(loaded, Mod) and loaded.name == "backtrack_phrase"
    simulator = Simulator(tokenizer, RandomLogits(5))
    assert simulator.run(loaded, "Say hi.").tokens == simulator.run(original, "Say hi.").tokens


def test_source_without_a_file_is_refused_clearly() -> None:
    namespace: dict[str, object] = {}
    exec("from quote_mod_sdk import mod\n@mod\ndef ghost(event, actions):\n    return None\n", namespace)
    with pytest.raises(SerializationError, match="source is not retrievable"):
        serialize_mod(namespace["ghost"])


def test_never_pickles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("pickle must not be used")

    monkeypatch.setattr(pickle, "dumps", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    load_mod(serialize_mod(load_seed("skeleton").my_mod))


def _write_bundle(root: Path, greeting: str) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "helpers.py").write_text(f"GREETING = {greeting!r}\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "util.py").write_text("from helpers import GREETING\n\ndef shout():\n    return GREETING.upper()\n")
    (root / "main.py").write_text(
        textwrap.dedent(
            """
            from quote_mod_sdk import mod
            import helpers
            from pkg.util import shout
            from pkg import util

            @mod
            def greeter(event, actions):
                return None

            RESULT = (helpers.GREETING, shout(), util.shout())
            """
        )
    )


def test_multi_file_bundles_import_their_own_modules_in_isolation(tmp_path: Path) -> None:
    _write_bundle(tmp_path / "a", "hi from a")
    _write_bundle(tmp_path / "b", "hi from b")
    bundle_a = serialize_directory(tmp_path / "a", entrypoint="main:greeter", name="greeter")
    bundle_b = serialize_directory(tmp_path / "b", entrypoint="main:greeter", name="greeter")
    assert set(bundle_a["files"]) == {"helpers.py", "pkg/__init__.py", "pkg/util.py"}
    mod_a, mod_b = load_mod(bundle_a), load_mod(bundle_b)
    assert mod_a.fn.__globals__["RESULT"] == ("hi from a", "HI FROM A", "HI FROM A")
    assert mod_b.fn.__globals__["RESULT"] == ("hi from b", "HI FROM B", "HI FROM B")
    import sys

    assert "helpers" not in sys.modules and "pkg" not in sys.modules


def test_digest_covers_content_and_ignores_key_order() -> None:
    payload = serialize_mod(load_seed("skeleton").my_mod)
    reordered = dict(reversed(list(payload.items())))
    assert bundle_digest(payload) == bundle_digest(reordered)
    assert bundle_digest(payload) != bundle_digest({**payload, "source": payload["source"] + "\n# changed"})
    assert bundle_digest(payload).startswith("sha256:")


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        ("not a dict", "JSON object"),
        ({"language": "rust", "source": "x", "module": "m", "entrypoint": "e"}, "unsupported mod language"),
        ({"source": "", "module": "m", "entrypoint": "e"}, "'source'"),
        ({"source": "x = 1", "module": "m; import os", "entrypoint": "e"}, "identifiers"),
        ({"source": "x = 1", "module": "m", "entrypoint": "missing"}, "no attribute 'missing'"),
        ({"source": "x = 1", "module": "m", "entrypoint": "e", "name": "bad name!"}, "mod name"),
        ({"source": "x = 1", "module": "m", "entrypoint": "e", "files": {"a.txt": "x"}}, "'files'"),
    ],
)
def test_malformed_bundles_are_refused_with_the_field_named(bundle, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SerializationError, match=message):
        load_mod(bundle)
