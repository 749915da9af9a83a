"""Word and character error rates (jiwer) of hypotheses against references, on normalised text.

Both sides go through `squeezer.text.normalize_text` first, so "42" and "forty two" agree and
punctuation or case never counts as an error. Rates are corpus-level: total edits over total
reference words (or characters), not a mean of per-utterance rates.

Characters are jiwer's: every character of the normalised string, including the single spaces
between words.

Empty references (nothing left after normalisation) are scored, not skipped: each hypothesis word
is an insertion and each hypothesis character a character insertion, while they add nothing to
the reference counts; `ErrorRates.empty_references` says how many there were. jiwer itself is
never shown an empty reference (jiwer 3 raises on one). A rate whose reference count is zero is
0.0 without errors and infinity with some.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jiwer

__all__ = ["ErrorRates", "error_rates", "per_utterance"]


@dataclass(frozen=True)
class ErrorRates:
    """Corpus-level edit counts and rates; word counts are jiwer's alignment of words."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_words: int
    char_errors: int
    reference_chars: int
    utterances: int
    empty_references: int

    @property
    def word_errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """WER and CER of `hypotheses` against `references`, both normalised first.

    Args:
        references: N reference transcripts.
        hypotheses: N hypotheses, in the same order.

    Returns:
        Totals over the N utterances (empty references: see the module docstring).
    """
    _check_lengths(references=references, hypotheses=hypotheses)
    from squeezer.text import normalize_text  # lazily: scoring needs only this one function

    return _score(
        [normalize_text(text) for text in references], [normalize_text(text) for text in hypotheses]
    )


def per_utterance(
    ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per utterance for a hypotheses file: id, normalised texts, rates and edit counts.

    Args:
        ids: N utterance ids.
        references: N reference transcripts.
        hypotheses: N hypotheses.

    Returns:
        N dicts with keys id, reference, hypothesis, wer, cer, substitutions, deletions,
        insertions, reference_words, char_errors, reference_chars (the counts a paired
        comparison of two models resamples).
    """
    _check_lengths(ids=ids, references=references, hypotheses=hypotheses)
    from squeezer.text import normalize_text

    rows = []
    for utterance, reference, hypothesis in zip(ids, references, hypotheses, strict=True):
        reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
        rates = _score([reference], [hypothesis])
        rows.append(
            {
                "id": utterance,
                "reference": reference,
                "hypothesis": hypothesis,
                "wer": rates.wer,
                "cer": rates.cer,
                "substitutions": rates.substitutions,
                "deletions": rates.deletions,
                "insertions": rates.insertions,
                "reference_words": rates.reference_words,
                "char_errors": rates.char_errors,
                "reference_chars": rates.reference_chars,
            }
        )
    return rows


def _score(references: list[str], hypotheses: list[str]) -> ErrorRates:
    """ErrorRates of already-normalised pairs; empty references scored as pure insertions."""
    pairs = [(ref, hyp) for ref, hyp in zip(references, hypotheses, strict=True) if ref]
    extra = [hyp for ref, hyp in zip(references, hypotheses, strict=True) if not ref]
    substitutions = deletions = hits = reference_chars = 0
    insertions = sum(len(hyp.split()) for hyp in extra)
    char_errors = sum(len(hyp) for hyp in extra)
    if pairs:
        refs, hyps = [ref for ref, _ in pairs], [hyp for _, hyp in pairs]
        words = jiwer.process_words(refs, hyps)
        chars = jiwer.process_characters(refs, hyps)
        substitutions, deletions, hits = words.substitutions, words.deletions, words.hits
        insertions += words.insertions
        char_errors += chars.substitutions + chars.deletions + chars.insertions
        reference_chars = chars.hits + chars.substitutions + chars.deletions
    reference_words = hits + substitutions + deletions
    return ErrorRates(
        wer=_rate(substitutions + deletions + insertions, reference_words),
        cer=_rate(char_errors, reference_chars),
        substitutions=substitutions,
        deletions=deletions,
        insertions=insertions,
        hits=hits,
        reference_words=reference_words,
        char_errors=char_errors,
        reference_chars=reference_chars,
        utterances=len(references),
        empty_references=len(extra),
    )


def _rate(errors: int, total: int) -> float:
    if total:
        return errors / total
    return math.inf if errors else 0.0


def _check_lengths(**sequences: Sequence[str]) -> None:
    """ValueError naming the sizes unless every sequence has the same length."""
    sizes = {name: len(sequence) for name, sequence in sequences.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"lengths differ: {sizes}")
