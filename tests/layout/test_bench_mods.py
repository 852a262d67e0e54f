"""The benchmarks measure the same mods: one module (bench/bench_mods.py) defines them all."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from quote_mod_sdk.testing import RandomLogits, Simulator

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_mods() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_mods", BENCH / "bench_mods.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_mods", module)
    spec.loader.exec_module(module)
    return module


def _defines_a_mod(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Name) and target.id == "mod":
                    return True
    return False


def test_no_bench_defines_its_own_mods() -> None:
    offenders = [
        p.name
        for p in sorted(BENCH.glob("*.py"))
        if p.name != "bench_mods.py" and _defines_a_mod(ast.parse(p.read_text()))
    ]
    assert not offenders, f"define benchmark mods in bench/bench_mods.py, not in {offenders}"


def test_the_shared_mods_do_what_their_names_say(tokenizer: Any) -> None:
    mods = _bench_mods()
    sim = Simulator(tokenizer, RandomLogits(3), eos_token_id=-1)
    plain = sim.run(None, "hello there", max_tokens=24)
    assert sim.run(mods.noop, "hello there", max_tokens=24).tokens == plain.tokens

    banned = plain.tokens[0]
    for masked in (mods.ban_token(banned),):
        assert banned not in sim.run(masked, "hello there", max_tokens=24).tokens
    assert mods.MASKED_TOKEN not in sim.run(mods.mask, "hello there", max_tokens=24).tokens
    word = mods.banned_id(tokenizer)

    def favour_word(context: Any, vocab_size: int) -> Any:  # the model would say the banned word every step
        row = np.zeros(vocab_size, dtype=np.float32)
        row[word] = 10.0
        return row

    favoured = Simulator(tokenizer, favour_word, vocab_size=len(tokenizer), eos_token_id=-1)
    assert set(favoured.run(None, "hello", max_tokens=8).tokens) == {word}
    assert word not in favoured.run(mods.ban_word, "hello", max_tokens=8).tokens
    assert mods.MASKED_TOKEN not in sim.run(mods.mask_inplace, "hello there", max_tokens=24).tokens

    rewound = sim.run(mods.backtrack_every(4, 2, [5, 6]), "hello there", max_tokens=24)
    assert len(rewound.erased_tokens) >= 2 * 4 and rewound.rollbacks
    rewound = sim.run(mods.rewind_every(3, 2, [5, 6], first_step=3), "hello there", max_tokens=24)
    assert rewound.rollbacks and rewound.erased_tokens
