"""Tests for squeezer.text: the normaliser's policy table and both tokenizers' contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from squeezer.text import (
    DEFAULT_CHARACTERS,
    SENTENCEPIECE_FILE,
    TOKENIZER_FILE,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
    normalize_text,
)

NORMALIZED = [
    ("Hello, World!", "hello world"),
    ("It’s 4:30 p.m.", "it's four thirty p m"),
    ("don´t", "don't"),
    ("at five o'clock", "at five o'clock"),
    ("'quoted' and rock 'n' roll", "quoted and rock n roll"),
    ("the dogs' bones", "the dogs bones"),
    ("Tom & Jerry", "tom and jerry"),
    ("50% off", "fifty percent off"),
    ("well-known — “really” – yes", "well known really yes"),
    ("ＡＢＣ ﬁne", "abc fine"),
    ("Café naïve Zoë", "cafe naive zoe"),
    ("  spaced\tout\n ", "spaced out"),
    ("", ""),
    ("?!", ""),
    ("0", "zero"),
    ("42", "forty two"),
    ("105", "one hundred five"),
    ("1000", "one thousand"),
    ("12345678", "twelve million three hundred forty five thousand six hundred seventy eight"),
    ("1,000,000", "one million"),
    ("1,999", "one thousand nine hundred ninety nine"),
    ("1999", "nineteen ninety nine"),
    ("1905", "nineteen oh five"),
    ("1900", "nineteen hundred"),
    ("1100", "eleven hundred"),
    ("2024", "two thousand twenty four"),
    ("007", "zero zero seven"),
    ("3.5", "three point five"),
    ("0.25", "zero point two five"),
    (".5", "point five"),
    ("v2.0", "v two point zero"),
    ("1st 2nd 3rd 4th", "first second third fourth"),
    ("12th 20th 21st 101st", "twelfth twentieth twenty first one hundred first"),
    ("1000000th", "one millionth"),
    ("1990s", "nineteen nineties"),
    ("the 90's", "the nineties"),
    ("6s and 7s", "sixes and sevens"),
    ("mp3", "mp three"),
    ("US$5", "us five"),
    ("1" + "0" * 36, "one " + "zero " * 35 + "zero"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZED)
def test_normalize_text_follows_the_policy(text: str, expected: str) -> None:
    assert normalize_text(text) == expected
    assert normalize_text(expected) == expected  # idempotent: scoring may normalise twice


CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Don't stop: she sells 42 sea shells by the sea shore!",
    "Peter Piper picked a peck of pickled peppers in 1999.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael; some years ago, never mind how long precisely.",
    "All happy families are alike, each unhappy family is unhappy in its own way.",
    "Jackdaws love my big sphinx of quartz, said the 3rd zebra at 7 o'clock.",
]


@pytest.fixture(scope="module")
def sentencepiece_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sentencepiece")
    SentencePieceTokenizer.train(CORPUS, directory, vocab_size=48)
    return directory


@pytest.fixture(params=["char", "sentencepiece", "bpe"])
def tokenizer(request: pytest.FixtureRequest, sentencepiece_dir: Path, tmp_path: Path) -> Tokenizer:
    if request.param == "char":
        return CharTokenizer()
    if request.param == "bpe":
        return SentencePieceTokenizer.train(CORPUS, tmp_path, vocab_size=48, model_type="bpe")
    return load_tokenizer(sentencepiece_dir)


def test_round_trip_gives_the_normalized_text(tokenizer: Tokenizer) -> None:
    for text in CORPUS:
        ids = tokenizer.encode(text)
        assert all(1 <= index <= tokenizer.vocab_size for index in ids)  # blank 0 never made
        assert tokenizer.decode(ids) == normalize_text(text)


def test_decode_skips_blanks(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("the lazy dog")
    with_blanks = [*(element for index in ids for element in (0, index)), 0]
    assert tokenizer.decode(with_blanks) == "the lazy dog"
    assert tokenizer.decode([]) == tokenizer.decode([0, 0]) == ""


def test_decode_rejects_ids_outside_the_vocabulary(tokenizer: Tokenizer) -> None:
    for bad in (-1, tokenizer.vocab_size + 1):
        with pytest.raises(ValueError, match=f"token id {bad}"):
            tokenizer.decode([1, bad])


def test_tokens_list_one_label_per_id(tokenizer: Tokenizer) -> None:
    assert isinstance(tokenizer, Tokenizer)
    assert len(tokenizer.tokens()) == tokenizer.vocab_size


def test_save_then_load_gives_the_same_ids(tokenizer: Tokenizer, tmp_path: Path) -> None:
    tokenizer.save(tmp_path / "model")
    loaded = load_tokenizer(tmp_path / "model")
    assert type(loaded) is type(tokenizer)
    assert loaded.tokens() == tokenizer.tokens()
    assert [loaded.encode(text) for text in CORPUS] == [tokenizer.encode(t) for t in CORPUS]


def test_encode_raises_on_an_unknown_character(tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"character 'ø' of 'smørrebrød' is not in"):
        tokenizer.encode("smørrebrød")


def test_default_characters_put_space_first() -> None:
    tokenizer = CharTokenizer()
    assert tokenizer.vocab_size == 28
    assert tokenizer.tokens() == list(DEFAULT_CHARACTERS)
    assert tokenizer.encode("a b'z") == [2, 1, 3, 28, 27]


def test_char_tokenizer_from_texts_collects_normalized_characters() -> None:
    tokenizer = CharTokenizer.from_texts(["Bab!", "Çab 2"])
    assert tokenizer.tokens() == [" ", "a", "b", "c", "o", "t", "w"]  # "2" became "two"


@pytest.mark.parametrize("symbols", [["a", " "], [" ", "ab"], [" ", "a", "a"], []])
def test_char_tokenizer_rejects_bad_symbols(symbols: list[str]) -> None:
    with pytest.raises(ValueError, match="symbol"):
        CharTokenizer(symbols)


def test_sentencepiece_training_is_deterministic(sentencepiece_dir: Path, tmp_path: Path) -> None:
    SentencePieceTokenizer.train(CORPUS, tmp_path, vocab_size=48)
    model = (tmp_path / SENTENCEPIECE_FILE).read_bytes()
    assert model == (sentencepiece_dir / SENTENCEPIECE_FILE).read_bytes()


def test_sentencepiece_ids_are_pieces_shifted_by_one(sentencepiece_dir: Path) -> None:
    tokenizer = load_tokenizer(sentencepiece_dir)
    assert tokenizer.vocab_size == 48
    assert tokenizer.tokens()[0] == "<unk>"  # id 1; encode refuses text that would need it


def test_sentencepiece_too_small_corpus_names_the_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot train 128 unigram pieces .* <= \d+"):
        SentencePieceTokenizer.train(CORPUS[:2], tmp_path)


@pytest.mark.parametrize("kind", ["char", "sentencepiece"])
def test_build_tokenizer_rejects_empty_text(kind: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        build_tokenizer(kind, ["", " ?! "], tmp_path)  # type: ignore[arg-type]


def test_build_tokenizer_saves_what_it_builds(tmp_path: Path) -> None:
    built = build_tokenizer("char", CORPUS, tmp_path)
    assert load_tokenizer(tmp_path).tokens() == built.tokens()


@pytest.mark.parametrize(
    ("kind", "model_type", "match"),
    [("words", "unigram", "kind 'words'"), ("sentencepiece", "wordpiece", "'wordpiece'")],
)
def test_build_tokenizer_rejects_unknown_switches(
    kind: str, model_type: str, match: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=match):
        build_tokenizer(kind, CORPUS, tmp_path, model_type=model_type)  # type: ignore[arg-type]


def test_load_names_an_unknown_kind(tmp_path: Path) -> None:
    CharTokenizer().save(tmp_path)
    settings = json.loads((tmp_path / TOKENIZER_FILE).read_text())
    (tmp_path / TOKENIZER_FILE).write_text(json.dumps({**settings, "kind": "words"}))
    with pytest.raises(ValueError, match=f"{TOKENIZER_FILE}: unknown tokenizer kind 'words'"):
        load_tokenizer(tmp_path)


def test_load_names_a_corrupt_json_file(tmp_path: Path) -> None:
    (tmp_path / TOKENIZER_FILE).write_text('{"kind": "char", ')
    with pytest.raises(ValueError, match=f"{TOKENIZER_FILE}: not valid JSON"):
        load_tokenizer(tmp_path)


def test_load_names_a_missing_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=TOKENIZER_FILE):
        load_tokenizer(tmp_path)


def test_load_refuses_another_normalizer_version(tmp_path: Path) -> None:
    CharTokenizer().save(tmp_path)
    settings = json.loads((tmp_path / TOKENIZER_FILE).read_text())
    (tmp_path / TOKENIZER_FILE).write_text(json.dumps({**settings, "normalizer": "english-v0"}))
    with pytest.raises(ValueError, match="normaliser 'english-v0'"):
        load_tokenizer(tmp_path)


def test_load_names_a_missing_model_file(sentencepiece_dir: Path, tmp_path: Path) -> None:
    (tmp_path / TOKENIZER_FILE).write_bytes((sentencepiece_dir / TOKENIZER_FILE).read_bytes())
    with pytest.raises(FileNotFoundError, match=str(tmp_path / SENTENCEPIECE_FILE)):
        load_tokenizer(tmp_path)


def test_load_names_a_corrupt_model_file(sentencepiece_dir: Path, tmp_path: Path) -> None:
    (tmp_path / TOKENIZER_FILE).write_bytes((sentencepiece_dir / TOKENIZER_FILE).read_bytes())
    (tmp_path / SENTENCEPIECE_FILE).write_bytes(b"not a model")
    with pytest.raises(ValueError, match=f"{SENTENCEPIECE_FILE}: not a SentencePiece model"):
        load_tokenizer(tmp_path)
