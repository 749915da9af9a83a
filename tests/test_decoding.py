"""Tests for squeezer.decoding: greedy CTC paths, pyctcdecode beam search, labels and KenLM."""

from __future__ import annotations

import itertools
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from squeezer.decoding import BeamSearchDecoder, decode_greedy_text, greedy_decode


class FakeCharTokenizer:
    """Characters, id 1 = space, like squeezer.text.CharTokenizer."""

    def __init__(self, symbols: Sequence[str] = (" ", "a", "b", "c", "'")) -> None:
        self.symbols = list(symbols)
        self.vocab_size = len(self.symbols)

    def tokens(self) -> list[str]:
        return list(self.symbols)

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join("".join(self.symbols[i - 1] for i in ids if i).split())

    def id(self, token: str) -> int:
        return self.symbols.index(token) + 1


class FakePieceTokenizer(FakeCharTokenizer):
    """SentencePiece-like pieces with a lone "▁" and an "<unk>" that decodes to nothing."""

    def __init__(self) -> None:
        super().__init__(["<unk>", "▁", "▁he", "l", "lo", "▁a", "b", "x", "y"])

    def decode(self, ids: Sequence[int]) -> str:
        pieces = (self.symbols[i - 1] for i in ids if i)
        text = "".join("" if piece == "<unk>" else piece for piece in pieces)
        return " ".join(text.replace("▁", " ").split())


def frames(tokenizer: FakeCharTokenizer, *columns: dict[str, float]) -> torch.Tensor:
    """(T, V + 1) log-probs: each column's named tokens ("" = blank) get their probability and
    the rest of the mass is shared by the other labels."""
    width = tokenizer.vocab_size + 1
    rows = []
    for column in columns:
        named = {0 if token == "" else tokenizer.id(token): p for token, p in column.items()}
        rest = max(1.0 - sum(named.values()), 1e-6) / (width - len(named))
        row = torch.full((width,), rest, dtype=torch.float64)
        for index, p in named.items():
            row[index] = p
        rows.append((row / row.sum()).log())
    return torch.stack(rows).float() if rows else torch.zeros(0, width)


def path_frames(tokenizer: FakeCharTokenizer, path: Sequence[str], p: float = 0.9) -> torch.Tensor:
    """Peaked (T, V + 1) log-probs whose frame-wise best path is `path` ("" = blank)."""
    return frames(tokenizer, *({token: p} for token in path))


def batch(*utterances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (T_i, V + 1) tensors into (B, T, V + 1) with a strong non-blank token in padding, so a
    decoder that reads padding would show it."""
    lengths = torch.tensor([len(u) for u in utterances])
    padded = torch.full((len(utterances), int(lengths.max()), utterances[0].size(1)), -30.0)
    padded[..., 2] = 0.0
    for row, utterance in enumerate(utterances):
        padded[row, : len(utterance)] = utterance
    return padded, lengths


def test_greedy_merges_repeats_and_keeps_blank_separated_repeats() -> None:
    chars = FakeCharTokenizer()
    log_probs = path_frames(chars, ["a", "a", "", "a", "b", "b", "", "", "c", " ", "c"])
    assert greedy_decode(*batch(log_probs)) == [[2, 2, 3, 4, 1, 4]]


def test_greedy_ignores_padding_frames() -> None:
    chars = FakeCharTokenizer()
    log_probs, lengths = batch(
        path_frames(chars, ["a", "", "b", "c", "c"]),
        path_frames(chars, ["b", "b"]),  # padding repeats "a" (id 2): must not be emitted
        path_frames(chars, []),
    )
    assert greedy_decode(log_probs, lengths) == [[2, 3, 4], [3], []]


def test_greedy_matches_a_per_utterance_reference() -> None:
    log_probs = torch.randn(4, 30, 6).log_softmax(dim=-1)
    lengths = torch.tensor([30, 17, 1, 0])
    expected = []
    for row, length in zip(log_probs, lengths.tolist(), strict=True):
        best = row[:length].argmax(dim=-1).tolist()
        expected.append([token for token, _ in itertools.groupby(best) if token != 0])
    assert greedy_decode(log_probs, lengths) == expected
    assert greedy_decode(torch.zeros(2, 0, 6), torch.tensor([0, 0])) == [[], []]


def test_greedy_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="lengths must lie"):
        greedy_decode(torch.zeros(2, 5, 4), torch.tensor([5, 6]))
    with pytest.raises(ValueError, match=r"\(B, T, V \+ 1\)"):
        greedy_decode(torch.zeros(5, 4), torch.tensor([5]))


def test_greedy_text_for_both_tokenizer_kinds() -> None:
    chars, pieces = FakeCharTokenizer(), FakePieceTokenizer()
    char_path = ["a", "b", "", "b", " ", "c", "a", "'", "b"]
    assert decode_greedy_text(*batch(path_frames(chars, char_path)), chars) == ["abb ca'b"]
    piece_path = ["▁he", "l", "", "lo", "▁a", "b", "▁", "x"]
    assert decode_greedy_text(*batch(path_frames(pieces, piece_path)), pieces) == ["hello ab x"]


def test_beam_labels_put_blank_first_and_keep_characters() -> None:
    decoder = BeamSearchDecoder(FakeCharTokenizer())
    assert decoder.labels == ("", " ", "a", "b", "c", "'")
    pieces = BeamSearchDecoder(FakePieceTokenizer()).labels
    assert pieces[0] == "" and pieces[3:6] == ("▁he", "l", "lo")
    assert pieces[2].startswith("▁") and len(pieces[2]) == 2  # the lone "▁", relabelled
    assert "<unk>" not in pieces and "▁⁇▁" not in pieces


@pytest.mark.parametrize(
    ("tokenizer", "paths", "expected"),
    [
        (
            FakeCharTokenizer(),
            [["a", "a", "", "a", " ", "b", "c"], ["c", "'", "a", " ", " ", "b"], ["a"]],
            ["aa bc", "c'a b", "a"],
        ),
        (
            FakePieceTokenizer(),
            [["▁he", "l", "l", "", "lo"], ["▁a", "b", "▁", "x", "", "y"], ["▁he", "<unk>", "lo"]],
            ["hello", "ab xy", "helo"],
        ),
    ],
    ids=["characters", "sentencepiece"],
)
def test_beam_equals_greedy_on_peaked_distributions(
    tokenizer: FakeCharTokenizer, paths: list[list[str]], expected: list[str]
) -> None:
    log_probs, lengths = batch(*(path_frames(tokenizer, path) for path in paths))
    beam = BeamSearchDecoder(tokenizer).decode(log_probs, lengths, beam_width=8)
    assert beam == decode_greedy_text(log_probs, lengths, tokenizer) == expected


def test_beam_finds_the_label_sequence_greedy_misses() -> None:
    # Two frames, each blank 0.6 / "a" 0.4. Greedy's path is blank-blank: "" with p = 0.36.
    # "a" sums the paths aa, a-, -a: 0.16 + 0.24 + 0.24 = 0.64, the most probable text.
    chars = FakeCharTokenizer()
    log_probs, lengths = batch(
        frames(chars, {"": 0.6 - 1e-4, "a": 0.4}, {"": 0.6 - 1e-4, "a": 0.4})
    )
    assert decode_greedy_text(log_probs, lengths, chars) == [""]
    assert BeamSearchDecoder(chars).decode(log_probs, lengths) == ["a"]


@pytest.mark.parametrize("seed", range(3))
def test_beam_matches_brute_force_most_probable_text(seed: int) -> None:
    chars = FakeCharTokenizer([" ", "a", "b"])
    generator = torch.Generator().manual_seed(seed)
    log_probs = (1.5 * torch.randn(5, 4, generator=generator)).log_softmax(dim=-1)
    texts: dict[str, float] = defaultdict(float)
    for path in itertools.product(range(4), repeat=5):  # every alignment, 4^5 of them
        ids = [token for token, _ in itertools.groupby(path) if token != 0]
        texts[chars.decode(ids)] += math.exp(
            sum(log_probs[t, k].item() for t, k in enumerate(path))
        )
    best = max(texts, key=texts.__getitem__)
    decoded = BeamSearchDecoder(chars).decode(*batch(log_probs), beam_width=256)
    assert decoded == [best]


def test_lone_word_start_piece_does_not_split_other_beams() -> None:
    # pyctcdecode 0.5 alone decodes this as "he llo": the candidate "▁" at frame 2 sets its
    # decoder-wide force_next_break, which then splits the best beam's "l".
    pieces = FakePieceTokenizer()
    log_probs = frames(pieces, {"▁he": 0.98}, {"l": 0.9, "▁": 0.09}, {"lo": 0.98})
    assert BeamSearchDecoder(pieces).decode(*batch(log_probs)) == ["hello"]


def test_beam_rejects_tokens_pyctcdecode_would_rewrite() -> None:
    with pytest.raises(ValueError, match=r"'\|' would be read by pyctcdecode as ' '"):
        BeamSearchDecoder(FakeCharTokenizer(["|", "a", "b"]))


def test_beam_rejects_a_vocabulary_mismatch() -> None:
    log_probs, lengths = batch(path_frames(FakeCharTokenizer(["a", "b"]), ["a"]))
    with pytest.raises(ValueError, match="labels"):
        BeamSearchDecoder(FakeCharTokenizer()).decode(log_probs, lengths)


def test_language_model_without_kenlm_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "kenlm", None)  # makes `import kenlm` raise ImportError
    with pytest.raises(ImportError, match=r"squeezer\[lm\]"):
        BeamSearchDecoder(FakeCharTokenizer(), lm_path=tmp_path / "lm.arpa")


def write_arpa(path: Path, words: Sequence[str]) -> Path:
    """A bigram ARPA model (KenLM needs two orders): `words` likely, everything else <unk>."""
    unigrams = [(-1.0, "</s>"), (-99.0, "<s>"), (-6.0, "<unk>")] + [(-0.5, word) for word in words]
    lines = ["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(words)}", "", "\\1-grams:"]
    lines += [f"{logp}\t{word}\t0" for logp, word in unigrams]
    lines += ["", "\\2-grams:", *(f"-0.1\t<s> {word}" for word in words)]
    path.write_text("\n".join([*lines, "", "\\end\\", ""]))
    return path


@pytest.mark.parametrize(
    ("tokenizer", "columns", "acoustic", "lexicon"),
    [
        (FakeCharTokenizer(), [{"a": 0.55, "c": 0.44}, {"": 0.99}, {"b": 0.99}], "ab", "cb"),
        # "▁" then "x"/"y": the LM must see "y", not the lone-▁ mark in front of it.
        (FakePieceTokenizer(), [{"▁": 0.99}, {"x": 0.55, "y": 0.44}], "x", "y"),
    ],
    ids=["characters", "sentencepiece"],
)
def test_language_model_overrules_a_close_acoustic_call(
    tmp_path: Path,
    tokenizer: FakeCharTokenizer,
    columns: list[dict[str, float]],
    acoustic: str,
    lexicon: str,
) -> None:
    pytest.importorskip("kenlm")
    log_probs, lengths = batch(frames(tokenizer, *columns))
    assert BeamSearchDecoder(tokenizer).decode(log_probs, lengths) == [acoustic]
    lm_path = write_arpa(tmp_path / "lm.arpa", [lexicon])
    with_lm = BeamSearchDecoder(tokenizer, lm_path=lm_path, alpha=1.0, beta=0.0)
    assert with_lm.decode(log_probs, lengths) == [lexicon]


@pytest.mark.parametrize("kind", ["char", "sentencepiece"])
def test_real_tokenizers_round_trip_through_both_decoders(kind: str, tmp_path: Path) -> None:
    from squeezer.text import build_tokenizer

    texts = ["The quick brown fox jumps over the lazy dog.", "Zebras vex 42 owls, don't they?"]
    tokenizer = build_tokenizer(kind, texts * 10, tmp_path, vocab_size=36)
    ids = tokenizer.encode(texts[1])
    path = [id_ for token in ids for id_ in (token, 0)]  # a blank after every token
    log_probs = torch.full((1, len(path), tokenizer.vocab_size + 1), -10.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    lengths = torch.tensor([len(path)])
    expected = ["zebras vex forty two owls don't they"]
    assert decode_greedy_text(log_probs, lengths, tokenizer) == expected
    assert BeamSearchDecoder(tokenizer).decode(log_probs, lengths) == expected
