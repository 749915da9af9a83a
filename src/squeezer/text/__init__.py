"""Text for CTC: one English normaliser and two tokenizers (characters, SentencePiece); blank = 0.

`normalize.py` holds the normaliser and its policy; `tokenizers.py` the tokenizers and their
files. Everything public is re-exported here.
"""

from squeezer.text.normalize import NORMALIZER, normalize_text
from squeezer.text.tokenizers import (
    DEFAULT_CHARACTERS,
    SENTENCEPIECE_FILE,
    TOKENIZER_FILE,
    CharTokenizer,
    DecodeStyle,
    ModelType,
    SentencePieceTokenizer,
    Tokenizer,
    TokenizerKind,
    build_tokenizer,
    load_tokenizer,
)

__all__ = [
    "DEFAULT_CHARACTERS",
    "NORMALIZER",
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
    "normalize_text",
]
