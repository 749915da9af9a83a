"""Tests for squeezer.scoring: hand-counted WER/CER, normalisation, empty references."""

from __future__ import annotations

import math

import pytest

from squeezer.scoring import ErrorRates, error_rates, per_utterance


def test_hand_counted_word_and_character_errors() -> None:
    # "the cat sat" -> "the cat sat down": 3 hits, 1 inserted word; 5 inserted chars (" down").
    # "a b c d" -> "a x c": a hit, b->x substituted, c hit, d deleted; chars: 1 sub + " d" deleted.
    rates = error_rates(["the cat sat", "a b c d"], ["the cat sat down", "a x c"])
    assert rates == ErrorRates(
        wer=3 / 7,
        cer=8 / 18,
        substitutions=1,
        deletions=1,
        insertions=1,
        hits=5,
        reference_words=7,
        char_errors=8,
        reference_chars=18,
        utterances=2,
        empty_references=0,
    )
    assert rates.word_errors == 3


def test_rates_are_corpus_totals_not_a_mean_of_utterances() -> None:
    # Per utterance 1/1 and 0/3 would average 0.5; the corpus has 1 error in 4 words.
    assert error_rates(["a", "b c d"], ["x", "b c d"]).wer == pytest.approx(0.25)


def test_both_sides_are_normalised() -> None:
    rates = error_rates(["The cat, it's 42!"], ["the  CAT its forty-two"])
    # "the cat it's forty two" vs "the cat its forty two": one word and one character apart.
    assert (rates.substitutions, rates.reference_words, rates.char_errors) == (1, 5, 1)


def test_empty_hypothesis_deletes_every_reference_word() -> None:
    rates = error_rates(["a b"], [""])
    assert (rates.wer, rates.deletions, rates.cer, rates.reference_chars) == (1.0, 2, 1.0, 3)


def test_empty_reference_counts_hypothesis_words_as_insertions() -> None:
    rates = error_rates(["", "a b", "?!"], ["x y", "a b", ""])  # "?!" normalises to ""
    assert (rates.insertions, rates.reference_words, rates.wer) == (2, 2, 1.0)
    assert (rates.char_errors, rates.reference_chars, rates.cer) == (3, 3, 1.0)
    assert (rates.utterances, rates.empty_references) == (3, 2)


def test_only_empty_references() -> None:
    assert error_rates([""], [""]).wer == 0.0
    assert math.isinf(error_rates([""], ["x"]).wer)
    assert error_rates([], []).utterances == 0


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="lengths differ"):
        per_utterance(["u1"], ["a", "b"], ["a", "b"])


def test_per_utterance_rows() -> None:
    rows = per_utterance(["u1", "u2", "u3"], ["A b.", "a b c d", ""], ["a b", "a x c", "hi"])
    assert [row["id"] for row in rows] == ["u1", "u2", "u3"]
    assert rows[0] == {
        "id": "u1",
        "reference": "a b",
        "hypothesis": "a b",
        "wer": 0.0,
        "cer": 0.0,
        "substitutions": 0,
        "deletions": 0,
        "insertions": 0,
        "reference_words": 2,
        "char_errors": 0,
        "reference_chars": 3,
    }
    assert (rows[1]["wer"], rows[1]["cer"]) == (pytest.approx(2 / 4), pytest.approx(3 / 7))
    assert (rows[1]["char_errors"], rows[1]["reference_chars"]) == (3, 7)
    assert (rows[2]["char_errors"], rows[2]["reference_chars"]) == (2, 0)
    assert (rows[2]["insertions"], math.isinf(rows[2]["wer"])) == (1, True)
