"""The original Quote SDK's public names and call styles, served by our one implementation."""

from __future__ import annotations

import importlib.util
import inspect
import linecache
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import quote_mod_sdk
from quote_mod_sdk import (
    ActionBuilder,
    Added,
    AdjustedLogits,
    AdjustedPrefill,
    AdjustLogits,
    AdjustPrefill,
    Backtrack,
    EmitError,
    ForceTokens,
    ForwardPass,
    InvalidActionError,
    Mod,
    ModAction,
    Noop,
    Prefilled,
    QuoteModError,
    Sampled,
    SerializationError,
    ToolCalls,
    create_mod,
    for_event,
    get_schemas,
    load_mod,
    max_compat,
    mod,
    serialize_mod,
    tokenize,
    validate_action,
)
from quote_mod_sdk.conversation import conversation_scope
from quote_mod_sdk.errors import ConversationAccessError


class Tok:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


def fp(step: int = 1) -> ForwardPass:
    return ForwardPass("r", step, np.zeros(8, dtype=np.float32))


# ----- @mod and ActionBuilder ------------------------------------------------------------------
def test_mod_is_callable_the_original_way_with_event_and_tokenizer() -> None:
    seen: list[Any] = []

    @mod
    def m(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        seen.append(tokenizer)
        return actions.force_tokens(tokenizer.encode("a")) if isinstance(event, Added) else actions.noop()

    tok = Tok()
    assert m(Added("r", 1, [5], False), tok) == ForceTokens([97])
    assert seen == [tok]
    assert isinstance(m(Sampled("r", 1, 3)), Noop)  # mod_fn(event): tokenizer None
    assert seen[-1] is None


def test_loaders_written_for_the_original_find_the_mod_as_a_wrapped_function(tmp_path: Path) -> None:
    path = tmp_path / "added_force.py"
    path.write_text(
        "from quote_mod_sdk import mod, Added\n\n"
        "def helper(x):\n    return x\n\n"
        "@mod\ndef test_added_force(event, actions, tokenizer):\n"
        "    if isinstance(event, Added) and not event.forced:\n"
        "        return actions.force_tokens(tokenizer.encode(' world', add_special_tokens=False))\n"
        "    return actions.noop()\n"
    )
    spec = importlib.util.spec_from_file_location("added_force", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [o for _, o in inspect.getmembers(module) if inspect.isfunction(o) and hasattr(o, "__wrapped__")]
    assert found == [module.test_added_force] and isinstance(found[0], Mod)
    assert found[0](Added("r", 1, [104], False), Tok()) == ForceTokens(Tok().encode(" world"))
    assert inspect.getfile(found[0]) == str(path) and type(found[0]) is Mod


def test_two_argument_handler_and_create_mod() -> None:
    handler = create_mod(lambda event, actions, tokenizer: actions.backtrack(1, [2]))
    assert handler(Added("r", 1, [1]), Tok()) == Backtrack(1, [2])
    two = mod(lambda event, actions: actions.noop())
    assert isinstance(two(fp(), None), Noop)


def test_calling_with_a_tokenizer_and_a_third_argument_is_refused() -> None:
    m = mod(lambda event, actions, tokenizer: actions.noop())
    with pytest.raises(QuoteModError):
        m(fp(), Tok(), Tok())


def test_original_style_call_refuses_an_illegal_action_when_it_is_built() -> None:
    @mod
    def m(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        return actions.adjust_prefill([1])

    with pytest.raises(InvalidActionError, match="not permitted for event type ForwardPass"):
        m(fp(), Tok())


def test_action_builder_bound_to_an_event_checks_what_it_builds() -> None:
    builder = ActionBuilder(Prefilled("r", 0, 16))
    assert builder.adjust_prefill([1, 2], max_steps=3) == AdjustPrefill([1, 2], 3)
    for build in (lambda: builder.force_tokens([1]), lambda: builder.backtrack(1), lambda: builder.adjust_logits()):
        with pytest.raises(InvalidActionError):
            build()
    assert isinstance(for_event(Added("r", 1, [1])).backtrack(1, [3]), Backtrack)
    # An unbound builder (ours) leaves the check to validate_action.
    assert ActionBuilder().force_tokens([1]) == ForceTokens([1])
    with pytest.raises(InvalidActionError):
        validate_action(Prefilled("r", 0, 1), ForceTokens([1]))


def test_adjust_logits_without_arguments_uses_the_events_row() -> None:
    event = fp()
    action = for_event(event).adjust_logits()
    assert isinstance(action, AdjustedLogits) and action.logits is event.logits
    with pytest.raises(InvalidActionError):
        ActionBuilder().adjust_logits()


# ----- events and actions ----------------------------------------------------------------------
def test_event_constructors_take_the_originals_arguments() -> None:
    pre = Prefilled("r", 0, 32)
    assert (pre.prefilled_text, pre.context_info, pre.tokens_so_far_len) == ("", None, 0)
    positional = Prefilled("r", 0, 32, {"tokens": [1]})  # original order: context_info 4th
    assert positional.context_info == {"tokens": [1]} and positional.prefilled_text == ""
    added = Added("r", 2, [4, 5], True)
    assert added.tokens == [4, 5] == added.added_tokens and added.tokens_so_far_len == 0


def test_added_in_the_older_argument_order_with_tokens_so_far_fourth() -> None:
    sampled = Added("r", 2, [89], 3, False)
    assert sampled.forced is False and sampled.tokens_so_far_len == 3
    forced = Added("r", 1, [81, 58], 2, True)
    assert forced.forced is True and forced.tokens_so_far_len == 2
    assert Added("r", 1, [1], 1).forced == 1  # an int flag alone is still the flag


def test_actions_show_their_fields_like_plain_objects() -> None:
    assert vars(Backtrack(2)) == {"n": 2, "reinject_tokens": None}
    assert ForceTokens([3]).__dict__ == {"tokens": [3]}


def test_action_attributes_have_the_originals_names() -> None:
    assert Backtrack(2, [7]).tokens == [7] and Backtrack(1).tokens is None
    calls = ActionBuilder().tool_calls({"name": "f", "arguments": {}})
    assert isinstance(calls, ToolCalls) and calls.tool_calls is calls.calls
    assert EmitError("boom").err_str == "boom"


def test_original_class_names_are_ours() -> None:
    assert AdjustedLogits is AdjustLogits and AdjustedPrefill is AdjustPrefill
    assert isinstance(Noop(), ModAction) and not isinstance(object(), ModAction)  # type: ignore[misc, arg-type]
    from quote_mod_sdk.serialization import serialize_mod as original_spelling

    assert original_spelling is serialize_mod
    for name in ("ModCallable", "create_mod", "for_event", "tokenize", "get_schemas", "validate_action"):
        assert name in quote_mod_sdk.__all__


# ----- tokenize and get_schemas ----------------------------------------------------------------
def test_tokenize_accepts_encoders_and_callables_and_names_failures() -> None:
    assert tokenize("ab", Tok()) == [97, 98]
    assert tokenize("ab", lambda text: {"input_ids": np.array([1, 2])}) == [1, 2]
    assert tokenize("ab", lambda text: (3, 4)) == [3, 4]
    with pytest.raises(RuntimeError, match="required"):
        tokenize("ab", None)
    with pytest.raises(RuntimeError, match="failed to encode"):
        tokenize("ab", lambda text: "not ids")
    with pytest.raises(RuntimeError, match="must provide encode"):
        tokenize("ab", 42)


def test_get_schemas_returns_only_the_active_requests_tools() -> None:
    assert get_schemas() == []
    tools = [{"type": "function", "function": {"name": "search"}}]
    with conversation_scope("req-1", [], tools):
        got = get_schemas()
        assert got == tools and got is not tools
        got[0]["function"]["name"] = "tampered"
        assert get_schemas()[0]["function"]["name"] == "search"
        with pytest.raises(ConversationAccessError):
            get_schemas("req-2")


# ----- max.driver stand-in ---------------------------------------------------------------------
MAX_SOURCE = textwrap.dedent(
    """
    from quote_mod_sdk import ForwardPass, mod

    @mod
    def ban_zero(event, actions, tokenizer):
        if isinstance(event, ForwardPass):
            from max.driver import Tensor
            import max.driver as drv
            logits = event.logits.to_numpy()
            logits[0] = -1e9
            return actions.adjust_logits(Tensor.from_numpy(logits))
        return actions.noop()
    """
)


def _bundle(source: str, entry: str) -> dict[str, Any]:
    return {"language": "python", "module": "m", "entrypoint": entry, "source": source, "name": entry.replace("_", "-")}


def test_bundle_importing_max_driver_gets_the_stand_in_when_max_is_absent() -> None:
    max_compat._real_max_installed.cache_clear()
    assert importlib.util.find_spec("max") is None
    loaded = load_mod(_bundle(MAX_SOURCE, "ban_zero"))
    from quote_mod_sdk.tensor import as_logits_row

    action = loaded(ForwardPass("r", 1, as_logits_row(np.zeros(4, dtype=np.float32))), Tok())
    assert isinstance(action, AdjustLogits) and action.logits[0] == -1e9
    assert "max" not in sys.modules and "max.driver" not in sys.modules


def test_a_real_max_package_is_never_shadowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "max"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "driver.py").write_text("class Tensor:\n    REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    max_compat._real_max_installed.cache_clear()
    try:
        source = (
            "from max.driver import Tensor\nfrom quote_mod_sdk import mod\nIS_REAL = getattr(Tensor, 'REAL', False)\n"
        )
        source += "@mod\ndef m(event, actions, tokenizer):\n    return actions.noop()\n"
        from quote_mod_sdk.serialize import load_bundle_module

        assert load_bundle_module(_bundle(source, "m")).IS_REAL is True
    finally:
        for name in ("max", "max.driver"):
            sys.modules.pop(name, None)
        max_compat._real_max_installed.cache_clear()


def test_stand_in_covers_only_max_driver() -> None:
    max_compat._real_max_installed.cache_clear()
    source = "import max.engine\n@mod\ndef m(event, actions):\n    return actions.noop()\n"
    with pytest.raises(ModuleNotFoundError):
        load_mod(_bundle("from quote_mod_sdk import mod\n" + source, "m"))


# ----- serialize_mod for unregistered modules and notebook cells --------------------------------
def test_serialize_a_mod_loaded_from_a_file_without_sys_modules(tmp_path: Path) -> None:
    path = tmp_path / "loose_mod.py"
    path.write_text(
        "from quote_mod_sdk import mod\n\n@mod\ndef loose(event, actions, tokenizer):\n    return actions.noop()\n"
    )
    spec = importlib.util.spec_from_file_location("loose_mod", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "loose_mod" not in sys.modules
    bundle = serialize_mod(module.loose)
    assert bundle["source"] == path.read_text() and bundle["entrypoint"] == "loose"
    assert isinstance(load_mod(bundle)(fp(), Tok()), Noop)


def test_serialize_a_mod_defined_in_a_notebook_cell() -> None:
    cell = (
        "from quote_mod_sdk import mod\n\n@mod\ndef cell_mod(event, actions, tokenizer):\n    return actions.noop()\n"
    )
    filename = "<ipython-input-7-0123456789ab>"  # how IPython names a cell's code
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        exec(compile(cell, filename, "exec"), namespace)
        bundle = serialize_mod(namespace["cell_mod"], name="cell-mod")
    finally:
        linecache.cache.pop(filename, None)
    assert bundle["source"] == cell and bundle["module"] == "mod" and bundle["entrypoint"] == "cell_mod"
    assert isinstance(load_mod(bundle)(fp(), Tok()), Noop)


def test_code_without_retrievable_source_is_still_refused() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile("def f(event, actions):\n    return actions.noop()\n", "<string>", "exec"), namespace)
    with pytest.raises(SerializationError):
        serialize_mod(mod(namespace["f"]))


# ----- logits indexed the original engine's way ----------------------------------------------
def test_logits_take_the_original_engines_row_indexing(tokenizer) -> None:  # type: ignore[no-untyped-def]
    from quote_mod_sdk.testing import RandomLogits, Simulator

    banned = tokenizer.encode(" the", add_special_tokens=False)[0]
    boosted = tokenizer.encode(" cat", add_special_tokens=False)[0]

    @mod
    def skill_style(event, actions, tokenizer):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass):
            from quote_mod_sdk.tensor import Tensor  # what a bundle's `max.driver` import gets

            logits = event.logits.to_numpy().copy()
            logits[0, banned] = float("-inf")  # the original's rows are (1, vocab)
            logits[:, boosted] += 100.0
            return actions.adjust_logits(Tensor.from_numpy(logits))
        return actions.noop()

    result = Simulator(tokenizer, RandomLogits()).run(skill_style, "Say hi.", max_tokens=3)
    assert result.error is None and result.tokens == [boosted] * 3
    from quote_mod_sdk.tensor import as_logits_row

    row = as_logits_row(np.arange(4, dtype=np.float32))  # what a ForwardPass carries
    assert row[0, 2] == 2.0 and row.to_numpy()[-1, 3] == 3.0 and row[0] == 0.0  # 1-D keys unchanged
