"""Tokenizers for CTC (characters, SentencePiece); blank = 0.

`normalize_text` runs on training transcripts (inside every `encode`) and on references and
hypotheses before scoring, so WER never counts "42" against "forty two". Token ids are
1..vocab_size; id 0 is the CTC blank, which `encode` never produces and `decode` skips.
A tokenizer is a directory entry: `tokenizer.json` (kind + settings) and, for SentencePiece,
`tokenizer.model` beside it; `load_tokenizer` reads either kind back. `tokenizer.json` records
the `NORMALIZER` version its ids depend on, and loading refuses any other version.

Tokenizers. `CharTokenizer`: id 1 is always the space, then one id per character (28 by
default: space, a..z, apostrophe). `SentencePieceTokenizer`: our id = SentencePiece piece id + 1,
so its <unk> piece (piece 0) is id 1; `vocab_size` counts every piece, <unk> included, blank
excluded. Both `encode` methods raise ValueError on a character outside the vocabulary (naming it
and the text) rather than dropping it, so a data problem shows up before training, not in WER.

Decoding styles. "squeezer" (the default) collapses whitespace. "nemo" (tokenizers imported from
a `.nemo` file) prints exactly what NeMo prints (`squeezer.text.nemo_style`); a character
vocabulary in that style keeps NeMo's label order, whatever its first label.
"""

from __future__ import annotations

import io
import json
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import sentencepiece as spm

from squeezer.files import write_bytes_atomically
from squeezer.structured import short_repr
from squeezer.text.nemo_style import nemo_punctuation, strip_space_before_punctuation
from squeezer.text.normalize import NORMALIZER, normalize_text

__all__ = [
    "DEFAULT_CHARACTERS",
    "SENTENCEPIECE_FILE",
    "TOKENIZER_FILE",
    "CharTokenizer",
    "DecodeStyle",
    "ModelType",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TokenizerKind",
    "build_tokenizer",
    "load_tokenizer",
]

TokenizerKind = Literal["char", "sentencepiece"]
ModelType = Literal["unigram", "bpe"]
DecodeStyle = Literal["squeezer", "nemo"]
TOKENIZER_FILE = "tokenizer.json"
SENTENCEPIECE_FILE = "tokenizer.model"
DEFAULT_CHARACTERS = (" ", *string.ascii_lowercase, "'")


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> token ids 1..vocab_size for a CTC head with vocab_size + 1 outputs (0 = blank)."""

    @property
    def vocab_size(self) -> int:
        """The number of tokens, blank excluded."""
        ...

    def encode(self, text: str) -> list[int]:
        """Ids of `normalize_text(text)`; never 0; ValueError for an unknown character."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, blanks (0) skipped, whitespace collapsed; repeats are not merged."""
        ...

    def tokens(self) -> list[str]:
        """Token strings, entry i - 1 for id i: a CTC beam-search decoder's labels after blank."""
        ...

    def save(self, directory: Path) -> None:
        """Write `tokenizer.json` (and any model file) into `directory`."""
        ...


class CharTokenizer:
    """One token per character; id 1 is the space, then `symbols[1:]` in order.

    With `decode_style="nemo"` the symbols are NeMo's labels in NeMo's order (id = label + 1).
    """

    def __init__(
        self, symbols: Sequence[str] = DEFAULT_CHARACTERS, decode_style: DecodeStyle = "squeezer"
    ) -> None:
        symbols = tuple(symbols)
        self.decode_style = _check_style(decode_style)
        if decode_style == "squeezer" and (not symbols or symbols[0] != " "):
            first = short_repr(symbols[:1])
            raise ValueError(f"the first symbol must be the space ' ', got {first}")
        if not symbols:
            raise ValueError("a character vocabulary needs at least one symbol")
        for symbol in symbols:
            if not isinstance(symbol, str) or len(symbol) != 1:
                raise ValueError(f"symbols must be single characters, got {short_repr(symbol)}")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols must be distinct, got {short_repr(''.join(symbols))}")
        self._symbols = symbols
        self._ids = {symbol: index for index, symbol in enumerate(symbols, start=1)}
        self._punctuation = nemo_punctuation(symbols)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        """The characters of the normalised `texts`: space first, the rest sorted."""
        seen: set[str] = set()
        for text in texts:
            seen.update(normalize_text(text))
        seen.discard(" ")
        if not seen:
            raise ValueError("no characters to build a vocabulary from: the texts are empty")
        return cls((" ", *sorted(seen)))

    @property
    def vocab_size(self) -> int:
        return len(self._symbols)

    def encode(self, text: str) -> list[int]:
        normalized = normalize_text(text)
        unknown = next((character for character in normalized if character not in self._ids), None)
        if unknown is not None:
            raise ValueError(f"character {unknown!r} of {text!r} is not in the vocabulary")
        return [self._ids[character] for character in normalized]

    def decode(self, ids: Sequence[int]) -> str:
        text = "".join(self._symbols[index - 1] for index in _nonblank(ids, self.vocab_size))
        if self.decode_style == "nemo":
            return strip_space_before_punctuation(text, self._punctuation)
        return " ".join(text.split())

    def tokens(self) -> list[str]:
        return list(self._symbols)

    def save(self, directory: Path) -> None:
        settings = {"kind": "char", "symbols": list(self._symbols)}
        _write_settings(Path(directory), {**settings, **_style_setting(self.decode_style)})


class SentencePieceTokenizer:
    """SentencePiece subwords; our id = piece id + 1 (Kim et al. 2022 use 128 pieces)."""

    def __init__(self, model_proto: bytes, decode_style: DecodeStyle = "squeezer") -> None:
        self._model_proto = bytes(model_proto)
        self.decode_style = _check_style(decode_style)
        if not self._model_proto:  # SentencePiece takes it for "no model", and logs to stderr
            raise ValueError("not a SentencePiece model (the file is empty)")
        try:
            self._processor = spm.SentencePieceProcessor(model_proto=self._model_proto)
        except RuntimeError as error:
            raise ValueError(f"not a SentencePiece model ({_reason(error)})") from error
        try:
            tokens = self.tokens()
        except UnicodeDecodeError:  # a damaged file can parse with a piece that is not text
            raise ValueError("not a SentencePiece model (a piece is not UTF-8 text)") from None
        self._punctuation = nemo_punctuation(tokens)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        directory: Path,
        vocab_size: int = 128,
        model_type: ModelType = "unigram",
        seed: int = 0,
    ) -> SentencePieceTokenizer:
        """Train on the normalised `texts` in-process, deterministically, and save to `directory`.

        A corpus too small for `vocab_size` pieces raises ValueError naming the largest size it
        supports (SentencePiece's hard vocabulary limit stays on: the CTC head's width must be
        the size asked for). `seed` seeds SentencePiece's process-wide generator.
        """
        if model_type not in get_args(ModelType):
            raise ValueError(f"unknown model_type {model_type!r}; expected 'unigram' or 'bpe'")
        sentences = [sentence for sentence in map(normalize_text, texts) if sentence]
        if not sentences:
            raise ValueError("no text to train SentencePiece on: the texts are empty")
        model = io.BytesIO()
        spm.SetRandomGeneratorSeed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                **_trainer_options(vocab_size, model_type),
            )
        except RuntimeError as error:
            raise ValueError(
                f"SentencePiece cannot train {vocab_size} {model_type} pieces on "
                f"{len(sentences)} sentences: {_reason(error)}"
            ) from error
        tokenizer = cls(model.getvalue())
        tokenizer.save(directory)
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        normalized = normalize_text(text)
        pieces = self._processor.encode(normalized)
        unknown = self._processor.unk_id()
        if unknown in pieces:
            character = next(
                (c for c in normalized if c != " " and self._processor.piece_to_id(c) == unknown),
                "?",
            )
            raise ValueError(f"character {character!r} of {text!r} is not in the vocabulary")
        return [piece + 1 for piece in pieces]

    def decode(self, ids: Sequence[int]) -> str:
        pieces = [index - 1 for index in _nonblank(ids, self.vocab_size)]
        text = self._processor.decode(pieces)
        if self.decode_style == "nemo":
            return strip_space_before_punctuation(text, self._punctuation)
        return " ".join(text.split())

    def tokens(self) -> list[str]:
        return [self._processor.id_to_piece(piece) for piece in range(self.vocab_size)]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        write_bytes_atomically(directory / SENTENCEPIECE_FILE, self._model_proto)
        settings = {"kind": "sentencepiece", "model_file": SENTENCEPIECE_FILE}
        style = _style_setting(self.decode_style)
        _write_settings(directory, {**settings, "vocab_size": self.vocab_size, **style})


def build_tokenizer(
    kind: TokenizerKind,
    texts: Iterable[str],
    directory: Path,
    vocab_size: int = 128,
    model_type: ModelType = "unigram",
) -> Tokenizer:
    """Build a tokenizer of `kind` from `texts` and save it to `directory`.

    `vocab_size` and `model_type` apply to SentencePiece only; a character vocabulary is the set
    of characters the normalised texts contain.
    """
    if kind == "char":
        tokenizer = CharTokenizer.from_texts(texts)
        tokenizer.save(directory)
        return tokenizer
    if kind == "sentencepiece":
        return SentencePieceTokenizer.train(texts, directory, vocab_size, model_type)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {get_args(TokenizerKind)}")


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Read the tokenizer `save` wrote into `directory` (a model directory holds one)."""
    path = Path(directory) / TOKENIZER_FILE
    settings = _read_settings(path)
    kind = settings.get("kind")
    if kind == "sentencepiece":
        return _load_sentencepiece(path, settings)
    if kind != "char":
        expected = get_args(TokenizerKind)
        raise ValueError(
            f"{path}: unknown tokenizer kind {short_repr(kind)}; expected one of {expected}"
        )
    symbols = settings.get("symbols")
    if not isinstance(symbols, list):
        got = short_repr(symbols)
        raise ValueError(f"{path}: 'symbols' must be a list of characters, got {got}")
    odd = [symbol for symbol in symbols if not isinstance(symbol, str)]
    if odd:  # checked here: CharTokenizer would hash it, and a list cannot be hashed
        got = short_repr(odd[0])
        raise ValueError(f"{path}: 'symbols' must be a list of characters, got {got} in it")
    try:
        return CharTokenizer(symbols, _read_style(path, settings))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def _load_sentencepiece(path: Path, settings: dict[str, Any]) -> SentencePieceTokenizer:
    """The SentencePiece model that the `tokenizer.json` at `path` names, checked against it."""
    model_file = settings.get("model_file")
    if not isinstance(model_file, str) or Path(model_file).name != model_file:
        raise ValueError(
            f"{path}: model_file must be a file name beside it, got {short_repr(model_file)}"
        )
    model_path = path.parent / model_file
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: the SentencePiece model named by {path} is missing")
    try:
        tokenizer = SentencePieceTokenizer(model_path.read_bytes(), _read_style(path, settings))
    except ValueError as error:
        raise ValueError(f"{model_path}: {error}") from error
    if tokenizer.vocab_size != settings.get("vocab_size"):
        raise ValueError(
            f"{model_path}: {tokenizer.vocab_size} pieces, but {path} says "
            f"{short_repr(settings.get('vocab_size'))}"
        )
    return tokenizer


def _trainer_options(vocab_size: int, model_type: ModelType) -> dict[str, Any]:
    """SentencePiece trainer settings; each one is here for CTC, determinism or quiet."""
    return dict(
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,  # every training character gets a piece: no <unk> in training
        normalization_rule_name="identity",  # normalize_text already ran: one normaliser only
        bos_id=-1,  # CTC needs neither sentence marker
        eos_id=-1,
        unk_surface="",  # a decoded <unk> vanishes instead of printing " ⁇ "
        max_sentence_length=1 << 16,  # bytes; the default 4192 silently skips long transcripts
        num_threads=1,  # with no shuffling and no sampling: identical models for identical texts
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,  # library code stays quiet; errors still raise
    )


def _check_style(style: str) -> DecodeStyle:
    if style not in get_args(DecodeStyle):
        allowed = ", ".join(get_args(DecodeStyle))
        raise ValueError(f"decode_style={short_repr(style)} is not one of {allowed}")
    return style  # type: ignore[return-value]


def _style_setting(style: DecodeStyle) -> dict[str, str]:
    """The default style is left out of tokenizer.json, so existing files stay as they were."""
    return {} if style == "squeezer" else {"decode_style": style}


def _read_style(path: Path, settings: dict[str, Any]) -> DecodeStyle:
    style = settings.get("decode_style", "squeezer")
    try:
        return _check_style(style)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _nonblank(ids: Sequence[int], vocab_size: int) -> list[int]:
    """`ids` without blanks (0); ValueError for an id outside 0..vocab_size."""
    kept = []
    for index in map(int, ids):  # int() also takes numpy and 0-d torch integers
        if not 0 <= index <= vocab_size:
            raise ValueError(f"token id {index} is outside 0..{vocab_size}")
        if index:
            kept.append(index)
    return kept


def _write_settings(directory: Path, settings: dict[str, Any]) -> None:
    """Write `tokenizer.json`, tagged with the normaliser version its ids depend on."""
    text = json.dumps({**settings, "normalizer": NORMALIZER}, indent=2, ensure_ascii=False)
    write_bytes_atomically(directory / TOKENIZER_FILE, (text + "\n").encode("utf-8"))


def _read_settings(path: Path) -> dict[str, Any]:
    """The settings in `tokenizer.json`; ValueError naming the file if it cannot be used."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such tokenizer file")
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as error:  # bad UTF-8, bad JSON, or an integer of over 4300 digits
        raise ValueError(f"{path}: not valid JSON ({' '.join(str(error).split())[:120]})") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(settings).__name__}")
    if settings.get("normalizer") != NORMALIZER:
        raise ValueError(
            f"{path}: made for text normaliser {short_repr(settings.get('normalizer'))}, but "
            f"this version normalises as {NORMALIZER!r}; rebuild the tokenizer"
        )
    return settings


def _reason(error: RuntimeError) -> str:
    """SentencePiece's message without its C++ source location and check expression."""
    text = " ".join(str(error).split())
    if "ParseFromArray" in text:  # the failed check is all it says
        return "its protobuf does not parse"
    return text.rpartition("] ")[2][:120] or text[:120]
