"""The NeMo decode style: verbatim text, NeMo's punctuation rule, saved with the tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from squeezer.text import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from squeezer.text.nemo_style import nemo_punctuation, strip_space_before_punctuation

CORPUS = ["it's a dog", "don't stop", "the cat's hat", "a dog and a cat"] * 4


def test_punctuation_skips_special_and_word_start_tokens() -> None:
    tokens = ["<unk>", "[pad]", "▁'", "'", "a", "?!", " ", "##,"]
    assert nemo_punctuation(tokens) == frozenset("'?!")


def test_one_space_before_a_mark_goes_other_spacing_stays() -> None:
    text = "  it ' s  a  dog  ?"
    assert strip_space_before_punctuation(text, frozenset("'?")) == "  it' s  a  dog ?"
    assert strip_space_before_punctuation(text, frozenset()) == text


def test_nemo_char_labels_keep_their_order_and_spacing(tmp_path: Path) -> None:
    labels = ["a", " ", "b", "'"]  # NeMo's order; squeezer's own style needs the space first
    with pytest.raises(ValueError, match="first symbol must be the space"):
        CharTokenizer(labels)
    tokenizer = CharTokenizer(labels, decode_style="nemo")
    ids = [2, 2, 1, 0, 2, 4, 3]  # " ", " ", "a", blank, " ", "'", "b"
    assert tokenizer.decode(ids) == "  a'b"
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.tokens() == labels and loaded.decode(ids) == "  a'b"


def test_sentencepiece_style_round_trips_and_default_files_do_not_change(tmp_path: Path) -> None:
    trained = SentencePieceTokenizer.train(CORPUS, tmp_path / "own", vocab_size=20)
    assert "decode_style" not in (tmp_path / "own" / "tokenizer.json").read_text()
    model = (tmp_path / "own" / "tokenizer.model").read_bytes()
    nemo = SentencePieceTokenizer(model, decode_style="nemo")
    nemo.save(tmp_path / "nemo")
    loaded = load_tokenizer(tmp_path / "nemo")
    ids = trained.encode("it's a dog")
    assert loaded.decode(ids) == nemo.decode(ids) == "it's a dog"


def test_unknown_style_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="decode_style='kaldi'"):
        CharTokenizer(decode_style="kaldi")  # type: ignore[arg-type]
