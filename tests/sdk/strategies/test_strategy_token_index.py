"""TokenIndex: exact token bytes for several vocabulary styles, lookups and literal spelling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.strategies.base import StrategyError
from quote_mod_sdk.strategies.primitives import UntilEndType
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat, ListStrat, UntilStrat
from quote_mod_sdk.strategies.token_index import TokenIndex


def test_bytelevel_tokens_map_to_the_bytes_they_decode_to(tok: Any, index: TokenIndex) -> None:
    assert index.vocab_size == len(tok)
    for i, data in enumerate(index.token_bytes):
        if i in index.special_ids:
            assert data == b""
            continue
        assert data, i
        assert tok.decode([i]) == data.decode("utf-8", "replace")
    text = "café 日本語 😀 <question_to_user>"
    ids = tok.encode(text, add_special_tokens=False)
    assert b"".join(index.token_bytes[i] for i in ids) == text.encode()
    assert any(len(index.token_bytes[i]) == 1 and index.token_bytes[i][0] >= 0x80 for i in ids)


def test_index_is_cached_per_tokenizer_object(tok: Any) -> None:
    from quote_serving.models.tiny import build_tiny_tokenizer

    assert TokenIndex.of(tok) is TokenIndex.of(tok)
    other = build_tiny_tokenizer()
    assert TokenIndex.of(other) is not TokenIndex.of(tok)
    assert TokenIndex.of(TokenIndex.of(tok)) is TokenIndex.of(tok)


def test_prefix_and_containment_lookups(index: TokenIndex) -> None:
    starts = set(index.ids_with_prefix(b"th").tolist())
    assert starts == {i for i, b in enumerate(index.token_bytes) if b.startswith(b"th")}
    contains = set(index.ids_containing(b"es").tolist())
    assert contains == {i for i, b in enumerate(index.token_bytes) if b"es" in b}
    fits = index.prefix_token_ids(b"yesterday")
    assert fits and all(b"yesterday".startswith(index.token_bytes[i]) for i in fits)
    assert index.has_prefix(b"th") and not index.has_prefix(b"\xff\xff\xff")
    cont = set(index.continuation_ids.tolist())
    assert cont == {i for i, b in enumerate(index.token_bytes) if b and 0x80 <= b[0] < 0xC0}


def test_sentencepiece_style_vocabulary_with_byte_fallback(sp_tok: Any, drive: Any) -> None:
    index = TokenIndex.of(sp_tok)
    vocab = sp_tok.get_vocab()
    assert index.token_bytes[vocab["▁yes"]] == b" yes"
    assert index.token_bytes[vocab["<0xE8>"]] == b"\xe8"
    assert index.token_bytes[vocab["日本"]] == "日本".encode()
    assert index.token_bytes[sp_tok.eos_token_id] == b""
    # encode() prepends "▁" to a literal: tokenize_literal repairs it by spelling exact bytes
    assert b"".join(index.token_bytes[i] for i in sp_tok.encode("yes", add_special_tokens=False)) == b" yes"
    assert [index.token_bytes[i] for i in index.tokenize_literal(b"yes") or []] == [b"yes"]
    compiled = ChoicesStrat([" yes", " yesterday", "日本語", "😀"]).compile(sp_tok)
    for seed in range(8):
        run = drive(compiled.start(), sp_tok, seed=seed, use_forced=False)
        assert run.is_complete or run.accepting
        assert run.answer in (" yes", " yesterday", "日本語", "😀") and run.text == run.answer


def test_sentencepiece_vocabulary_drives_until_and_lists(sp_tok: Any, drive: Any) -> None:
    until = UntilStrat("<q>", UntilEndType.TAG, "</q>").compile(sp_tok)
    run = drive(until.start(), sp_tok, target="<q> the answer 語</q>", encode_forced=False)
    assert run.is_complete and run.answer == " the answer 語"
    lst = ListStrat(ChoicesStrat(["red", "green"]), separator=",", open="[", close="]").compile(sp_tok)
    run = lst.start()
    close = TokenIndex.of(sp_tok).ids_of(b"]")
    for _ in range(60):  # force literals with forced_tokens(): encode() would add "▁"
        if run.is_complete:
            break
        forced = run.forced_tokens()
        if forced is not None:
            run.advance(forced)
            continue
        ids = np.flatnonzero(run.allowed_mask())
        wants_close = len(run.answer) >= 3 and run.allowed_mask()[close].all()
        run.advance(close if wants_close else [int(ids[-1])])
    assert run.is_complete and run.text.startswith("[") and run.text.endswith("]")
    assert len(run.answer) == 3 and set(run.answer) <= {"red", "green"}


class CharTokenizer:
    """A tokenizer with nothing but encode/decode/len: one token per ASCII character."""

    def __len__(self) -> int:
        return 128

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


def test_tokenizer_with_only_encode_and_decode(drive: Any) -> None:
    char_tok = CharTokenizer()
    index = TokenIndex.of(char_tok)
    assert index.vocab_size == 128 and index.token_bytes[ord("a")] == b"a"
    run = drive(UntilStrat("Q:", UntilEndType.ANYCHAR, "?").compile(char_tok).start(), char_tok, target="Q:why?")
    assert run.is_complete and run.answer == "why"


def test_choices_the_vocabulary_cannot_spell_are_rejected() -> None:
    char_tok = CharTokenizer()  # ASCII only: "café" has no spelling
    with pytest.raises(StrategyError, match="café"):
        ChoicesStrat(["tea", "café"]).compile(char_tok)
    run = ChoicesStrat(["tea", "toast"]).compile(char_tok).start()
    run.advance([ord("t")])
    assert run.forced_text() is None and run.allowed_mask()[[ord("e"), ord("o")]].all()
