"""CTC decoding: greedy (vectorised, any device) and prefix beam search with optional KenLM.

Both take the CTC head's `log_probs (B, T, V + 1)` (blank = 0) with `lengths (B,)`, so padded
frames never reach a decoder. Text results are `normalize_text`-ed, the form scoring uses.

Beam search is pyctcdecode's. Its labels are `[""]` (the blank, which it spells as the empty
string) followed by `tokenizer.tokens()`. It infers the alphabet kind from the labels:

- characters: the label " " ends a word; every other label is appended to the current word.
- SentencePiece: any label starting with "▁" makes the alphabet BPE-style; such a label starts
  a word, a label without it continues the current word, and no label may contain " ".

Two SentencePiece pieces trip pyctcdecode 0.5 and are relabelled here. The lone "▁" piece (and
"<unk>", which pyctcdecode rewrites to "▁⁇▁") ends with "▁", which sets a decoder-wide
`force_next_break` flag instead of a per-beam one: the next continuation piece of *any* beam then
starts a new word, so "▁he" "l" "lo" comes out as "he llo" whenever "▁" is a candidate. The lone
"▁" becomes "▁" + a private-use mark (a word start with a mark for content), and special pieces
("<unk>", "<s>", ...) become bare marks (continuations); the marks are deleted from the output and
from every word the language model scores.
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from squeezer.nn.heads import BLANK
from squeezer.nn.masks import lengths_to_padding_mask

if TYPE_CHECKING:
    from squeezer.text import Tokenizer

__all__ = ["DEFAULT_BEAM_WIDTH", "BeamSearchDecoder", "decode_greedy_text", "greedy_decode"]

DEFAULT_BEAM_WIDTH = 64
WORD_START = "▁"  # SentencePiece's word-boundary mark, which pyctcdecode also keys on
_SPECIAL_PIECE = re.compile(r"^[<\[].+[>\]]$")  # pyctcdecode's own pattern for "<unk>", "[pad]"
_FIRST_MARK = 0xE000  # Unicode private use area: never produced by normalize_text or SentencePiece


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best token per frame, repeats merged, blanks dropped; padded frames ignored.

    Args:
        log_probs: (B, T, V + 1) CTC log-probabilities (or logits), blank at index 0; any device.
        lengths: (B,) real frames per utterance.

    Returns:
        B lists of token ids in 1..V.
    """
    _check_batch(log_probs, lengths)
    frames = log_probs.size(1)
    if frames == 0:  # nothing to take the argmax of
        return [[] for _ in range(log_probs.size(0))]
    best = log_probs.argmax(dim=-1)  # (B, T)
    previous = F.pad(best[:, :-1], (1, 0), value=BLANK)  # (B, T): the frame before, blank at t=0
    padding = lengths_to_padding_mask(lengths.to(best.device), frames)  # (B, T)
    keep = (best != previous) & (best != BLANK) & ~padding
    # One device-to-host copy for the whole batch, then split the kept ids row by row.
    best, keep = best.cpu(), keep.cpu()
    counts = keep.sum(dim=1).tolist()
    return [row.tolist() for row in best[keep].split(counts)]


def decode_greedy_text(
    log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer
) -> list[str]:
    """Greedy decoding to normalised text: (B, T, V + 1), (B,) -> B strings."""
    from squeezer.text import normalize_text  # lazily: greedy_decode needs no text module

    return [normalize_text(tokenizer.decode(ids)) for ids in greedy_decode(log_probs, lengths)]


@dataclass(frozen=True)
class _Labels:
    """pyctcdecode's labels (blank "" first) and the private-use marks to delete from its text."""

    labels: list[str]
    marks: str


class BeamSearchDecoder:
    """CTC prefix beam search (pyctcdecode) over a tokenizer's tokens, with optional KenLM fusion.

    Args:
        tokenizer: gives `tokens()`, token i being id i (blank 0 excluded).
        lm_path: a word-level KenLM model, ARPA (".arpa", unigrams read from it) or binary;
            needs the `lm` extra (kenlm).
        alpha: language model weight in shallow fusion (ignored without `lm_path`).
        beta: per-word bonus in shallow fusion (ignored without `lm_path`).
        beam_width: default number of beams kept per frame.

    Pruning is pyctcdecode's default: a token whose log-probability is below -5 in a frame is not
    expanded unless it is that frame's best, and beams 10 nats behind the best are dropped.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        lm_path: str | Path | None = None,
        alpha: float = 0.5,
        beta: float = 1.0,
        beam_width: int = DEFAULT_BEAM_WIDTH,
    ) -> None:
        _check_beam_width(beam_width)
        labels = _pyctcdecode_labels(tokenizer.tokens())
        with _quiet_pyctcdecode():  # it warns on import that kenlm is missing; we say so on need
            from pyctcdecode import Alphabet, BeamSearchDecoderCTC

            alphabet = Alphabet.build_alphabet(labels.labels)
        _check_alphabet(labels.labels, alphabet.labels)
        model = None
        if lm_path is not None:
            model = _language_model(Path(lm_path), float(alpha), float(beta), labels.marks)
        self.beam_width = beam_width
        self._labels = tuple(labels.labels)
        self._delete_marks = str.maketrans("", "", labels.marks)
        self._decoder = BeamSearchDecoderCTC(alphabet, model)
        # pyctcdecode keeps each language model in a class-level registry until cleanup().
        weakref.finalize(self, self._decoder.cleanup)

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels pyctcdecode decodes with: "" (blank) then one per token."""
        return self._labels

    def decode(
        self, log_probs: torch.Tensor, lengths: torch.Tensor, beam_width: int | None = None
    ) -> list[str]:
        """Best beam per utterance as normalised text.

        Args:
            log_probs: (B, T, V + 1) CTC log-probabilities, blank at index 0; any device.
            lengths: (B,) real frames per utterance; later frames are not decoded.
            beam_width: beams kept per frame; the constructor's value when None.

        Returns:
            B strings.
        """
        from squeezer.text import normalize_text

        _check_batch(log_probs, lengths, num_labels=len(self._labels))
        width = self.beam_width if beam_width is None else beam_width
        _check_beam_width(width)
        # float64: pyctcdecode sums per-frame scores in Python, so keep their precision.
        frames = log_probs.detach().to("cpu", torch.float64).numpy()
        texts = []
        for utterance, length in zip(frames, lengths.tolist(), strict=True):
            text = self._decoder.decode(utterance[:length], beam_width=width) if length else ""
            texts.append(normalize_text(text.translate(self._delete_marks)))
        return texts


def _pyctcdecode_labels(tokens: Sequence[str]) -> _Labels:
    """Blank "" then the tokens, with SentencePiece's lone "▁" and special pieces relabelled."""
    if not any(token.startswith(WORD_START) for token in tokens):
        return _Labels(["", *tokens], "")  # characters: pyctcdecode takes them as they are
    labels, marks = [""], []
    for token in tokens:
        if token == WORD_START or _SPECIAL_PIECE.match(token):
            mark = chr(_FIRST_MARK + len(marks))
            marks.append(mark)
            token = WORD_START + mark if token == WORD_START else mark
        labels.append(token)
    return _Labels(labels, "".join(marks))


def _check_alphabet(labels: list[str], normalized: list[str]) -> None:
    """Refuse labels that pyctcdecode would silently rewrite (e.g. "|", "_" or "<pad>")."""
    for index, (label, kept) in enumerate(zip(labels, normalized, strict=False)):
        if label != kept:
            raise ValueError(
                f"token {index} {label!r} would be read by pyctcdecode as {kept!r}; "
                "rename it in the tokenizer"
            )
    if len(labels) != len(normalized):
        raise ValueError(f"pyctcdecode added labels to the vocabulary: {normalized[len(labels) :]}")


def _language_model(path: Path, alpha: float, beta: float, marks: str) -> Any:
    """pyctcdecode's KenLM scorer for `path`; words are scored with `marks` deleted."""
    try:
        import kenlm
    except ImportError as error:
        raise ImportError(
            "a KenLM language model needs the kenlm package: pip install 'squeezer[lm]'"
        ) from error
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such language model file")
    from pyctcdecode.language_model import LanguageModel, load_unigram_set_from_arpa

    delete = str.maketrans("", "", marks)

    # Defined here because pyctcdecode is imported lazily (its import logs a kenlm warning).
    class _MarkFreeLanguageModel(LanguageModel):
        def score_partial_token(self, partial_token: str) -> float:
            return super().score_partial_token(partial_token.translate(delete))

        def score(self, prev_state: Any, word: str, is_last_word: bool = False) -> Any:
            return super().score(prev_state, word.translate(delete), is_last_word)

    unigrams = load_unigram_set_from_arpa(str(path)) if path.suffix == ".arpa" else None
    return _MarkFreeLanguageModel(kenlm.Model(str(path)), unigrams, alpha=alpha, beta=beta)


@contextlib.contextmanager
def _quiet_pyctcdecode() -> Iterator[None]:
    """Silence pyctcdecode's info and warning logs (import, alphabet checks) for a moment."""
    logger = logging.getLogger("pyctcdecode")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_batch(
    log_probs: torch.Tensor, lengths: torch.Tensor, num_labels: int | None = None
) -> None:
    """ValueError unless log_probs is (B, T, num_labels) and lengths (B,) within 0..T."""
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V + 1), got shape {tuple(log_probs.shape)}")
    batch, frames, width = log_probs.shape
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be ({batch},), got shape {tuple(lengths.shape)}")
    if num_labels is not None and width != num_labels:
        raise ValueError(f"log_probs have {width} labels, the tokenizer gives {num_labels}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > frames):
        raise ValueError(f"lengths must lie in 0..{frames}, got {lengths.tolist()}")


def _check_beam_width(beam_width: int) -> None:
    if beam_width < 1:
        raise ValueError(f"beam_width={beam_width} must be at least 1")
