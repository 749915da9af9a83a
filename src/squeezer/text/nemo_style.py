"""Decoded text exactly as NeMo 2.x prints it, for tokenizers imported from `.nemo` files.

NeMo's CTC decoding joins the tokens verbatim (characters concatenated; SentencePiece pieces
through SentencePiece's own decoder), then removes one whitespace character before any
punctuation mark its vocabulary contains (`AbstractCTCDecoding.
decode_tokens_to_str_with_strip_punctuation`). Squeezer's own style collapses all whitespace
instead; an imported model keeps NeMo's, so its text is identical to NeMo's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["nemo_punctuation", "strip_space_before_punctuation"]

# Tokens whose characters never count as punctuation (NeMo's `extract_punctuation_from_vocab`).
_SPECIAL_TOKEN = re.compile(r"^\[.*\]$|^<.*>$|^##|^▁|^\s*$")


def nemo_punctuation(tokens: Iterable[str]) -> frozenset[str]:
    """The punctuation marks (Unicode category P*) of a vocabulary, as NeMo collects them."""
    return frozenset(
        character
        for token in tokens
        if not _SPECIAL_TOKEN.match(token)
        for character in token
        if unicodedata.category(character).startswith("P")
    )


def strip_space_before_punctuation(text: str, punctuation: frozenset[str]) -> str:
    """Remove one whitespace character before each mark in `punctuation`, as NeMo does."""
    if not punctuation:
        return text
    marks = "|".join(re.escape(mark) for mark in sorted(punctuation))
    return re.sub(rf"(\s)({marks})", r"\2", text)
