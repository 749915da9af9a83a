"""Token and word times from a CTC model's log-probs, and SRT / WebVTT subtitles from them.

The greedy path (the best token in every frame) is the most probable CTC alignment of all, so
it is also the best alignment of the text it decodes to: each token of that text owns the run
of frames where it is the best token. A token's time is its run; a word's, from its first
token's first frame to its last token's last frame. Frame t of the encoder output covers audio
from t x frame_seconds onwards (4 feature frames of 10 ms: 40 ms), so times are exact multiples
of the frame whatever the windowing of a long file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from squeezer.nn.heads import BLANK
from squeezer.text import Tokenizer

__all__ = [
    "Timing",
    "ctc_timings",
    "format_srt",
    "format_vtt",
    "frame_energies",
    "segments_from_energies",
    "snap_to_speech",
    "speech_segments",
    "subtitle_cues",
    "word_timings",
]

WORD_START = "\u2581"  # sentencepiece's word-start mark


@dataclass(frozen=True)
class Timing:
    """A token or word: its text, start and end (seconds) and confidence (0..1).

    A token's confidence is its mean posterior over the frames it owns; a word's is the lowest
    of its tokens' (a word is as uncertain as its least certain token).
    """

    text: str
    start: float
    end: float
    confidence: float

    def to_dict(self) -> dict:
        return {key: round(value, 3) if isinstance(value, float) else value
                for key, value in asdict(self).items()}  # fmt: skip


@dataclass(frozen=True)
class _Run:
    token: int
    first: int  # frame
    last: int  # frame, inclusive
    confidence: float


def _token_runs(log_probs: torch.Tensor) -> list[_Run]:
    """(T, V + 1) -> the greedy path's non-blank runs (repeats merged, as in greedy decoding)."""
    if log_probs.size(0) == 0:
        return []
    probs, best = log_probs.float().exp().max(dim=-1)  # (T,), (T,)
    change = torch.ones_like(best, dtype=torch.bool)
    change[1:] = best[1:] != best[:-1]
    starts = change.nonzero().squeeze(1).tolist()  # first frame of every run, blanks included
    ends = [*starts[1:], best.numel()]
    runs = []
    for first, end in zip(starts, ends, strict=True):
        token = int(best[first])
        if token != BLANK:
            runs.append(_Run(token, first, end - 1, float(probs[first:end].mean())))
    return runs


def ctc_timings(
    log_probs: torch.Tensor, tokenizer: Tokenizer, frame_seconds: float
) -> tuple[list[Timing], list[Timing]]:
    """log_probs (T, V + 1) of one utterance -> its decoded words and tokens with their times,
    from one pass over the greedy path."""
    runs = _token_runs(log_probs)
    return _words(runs, tokenizer, frame_seconds), _tokens(runs, tokenizer, frame_seconds)


def word_timings(
    log_probs: torch.Tensor, tokenizer: Tokenizer, frame_seconds: float
) -> list[Timing]:
    """log_probs (T, V + 1) of one utterance -> each decoded word with its time."""
    return _words(_token_runs(log_probs), tokenizer, frame_seconds)


def _tokens(runs: list[_Run], tokenizer: Tokenizer, frame_seconds: float) -> list[Timing]:
    pieces = tokenizer.tokens()
    return [
        Timing(
            pieces[run.token - 1],
            run.first * frame_seconds,
            (run.last + 1) * frame_seconds,
            run.confidence,
        )
        for run in runs
    ]


def _words(runs: list[_Run], tokenizer: Tokenizer, frame_seconds: float) -> list[Timing]:
    """Words split at space tokens (character vocabularies) and before word-start pieces
    (sentencepiece's "\u2581"); each word's text is the tokenizer's decoding of its tokens."""
    pieces = tokenizer.tokens()
    words: list[list[_Run]] = []
    current: list[_Run] = []
    for run in runs:
        piece = pieces[run.token - 1]
        if piece.strip() in ("", WORD_START) or (piece.startswith(WORD_START) and current):
            if current:
                words.append(current)
            current = []
            if piece.strip() in ("", WORD_START):
                continue  # a bare separator belongs to no word
        current.append(run)
    if current:
        words.append(current)
    return [
        Timing(tokenizer.decode([run.token for run in word]).strip(), word[0].first * frame_seconds,
               (word[-1].last + 1) * frame_seconds, min(run.confidence for run in word))
        for word in words
    ]  # fmt: skip


def subtitle_cues(
    words: Sequence[Timing], max_characters: int = 42, max_gap: float = 1.0
) -> list[Timing]:
    """Words grouped into subtitle lines: a new cue after `max_characters` characters (the
    usual 42 per line) or at a pause longer than `max_gap` seconds."""
    cues: list[list[Timing]] = []
    for word in words:
        if cues:
            line = cues[-1]
            length = sum(len(w.text) + 1 for w in line) + len(word.text)
            if length <= max_characters and word.start - line[-1].end <= max_gap:
                line.append(word)
                continue
        cues.append([word])
    return [
        Timing(" ".join(w.text for w in line), line[0].start, line[-1].end,
               min(w.confidence for w in line))
        for line in cues
    ]  # fmt: skip


def _clock(seconds: float, decimal: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds_part, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds_part:02d}{decimal}{milliseconds:03d}"


def format_srt(words: Sequence[Timing]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    blocks = [
        f"{index}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{cue.text}\n"
        for index, cue in enumerate(subtitle_cues(words), start=1)
    ]
    return "\n".join(blocks)


def format_vtt(words: Sequence[Timing]) -> str:
    """WebVTT: the `WEBVTT` header, then cues `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    blocks = [
        f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}\n{cue.text}\n"
        for cue in subtitle_cues(words)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


SPEECH_FRAME_S = 0.01  # energy frames for the speech/silence edges
SPEECH_ABOVE_FLOOR_DB = 12.0  # a frame is speech this far above the quietest frames
MIN_CONTRAST_DB = 20.0  # below this range between quiet and loud there are no pauses to find
MAX_GAP_IN_SPEECH_S = 0.06  # shorter silences (stop closures) stay inside a speech segment


def speech_segments(waveform: torch.Tensor, sample_rate: int) -> list[tuple[float, float]]:
    """(N,) -> (start, end) seconds of the stretches of speech: 10 ms frames whose energy is
    12 dB above the recording's floor (its 5th percentile), gaps under 60 ms closed. Empty
    when the recording has no pauses to find (loud and quiet frames within 20 dB)."""
    return segments_from_energies(frame_energies(waveform, sample_rate))


def frame_energies(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(N,) -> (N // hop,) float64 energies in dB of the whole 10 ms frames (hop samples each).

    Each frame's energy depends on its own samples only, so a long recording can be fed in
    pieces whose lengths are multiples of hop and the energies concatenated: 100 numbers a
    second are all `segments_from_energies` needs, not the 16,000 samples."""
    hop = round(SPEECH_FRAME_S * sample_rate)
    frames = waveform[: waveform.numel() // hop * hop].double().view(-1, hop)  # (K, hop)
    return 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-12)  # (K,) dB


def segments_from_energies(energy: torch.Tensor) -> list[tuple[float, float]]:
    """(K,) dB energies of a whole recording's 10 ms frames -> its speech segments, seconds
    (see `speech_segments`)."""
    if energy.numel() < 2:
        return []
    floor, loud = torch.quantile(energy, 0.05), torch.quantile(energy, 0.99)
    if loud - floor < MIN_CONTRAST_DB:
        return []
    speech = (energy > floor + SPEECH_ABOVE_FLOOR_DB).tolist()
    segments: list[list[int]] = []
    for index, is_speech in enumerate(speech):
        if not is_speech:
            continue
        if segments and (index - segments[-1][1]) * SPEECH_FRAME_S <= MAX_GAP_IN_SPEECH_S:
            segments[-1][1] = index + 1
        else:
            segments.append([index, index + 1])
    return [(first * SPEECH_FRAME_S, end * SPEECH_FRAME_S) for first, end in segments]


def snap_to_speech(
    words: Sequence[Timing], segments: Sequence[tuple[float, float]]
) -> list[Timing]:
    """Word times moved onto the speech they were said in.

    CTC puts a token's spike anywhere in the sound it stands for, often late, so a word's
    tokens span less than the word. Each word goes to the speech segment its token span
    overlaps most (or lies nearest); a segment with one word gives that word its edges; a
    segment with several gives its first word's start and last word's end, and splits the
    words between at the middle of the pause between their token spans. With no segments
    (no pauses in the recording) the token spans stand."""
    if not segments or not words:
        return list(words)
    owner = [_nearest_segment(word, segments) for word in words]
    snapped = []
    for index, word in enumerate(words):
        first, last = segments[owner[index]]
        start = first if index == 0 or owner[index - 1] != owner[index] else None
        end = last if index == len(words) - 1 or owner[index + 1] != owner[index] else None
        if start is None:
            start = (words[index - 1].end + word.start) / 2
        if end is None:
            end = (word.end + words[index + 1].start) / 2
        snapped.append(Timing(word.text, start, max(end, start), word.confidence))
    return snapped


def _nearest_segment(word: Timing, segments: Sequence[tuple[float, float]]) -> int:
    def score(segment: tuple[float, float]) -> tuple[float, float]:
        overlap = min(word.end, segment[1]) - max(word.start, segment[0])
        distance = max(segment[0] - word.end, word.start - segment[1], 0.0)
        return (-max(overlap, 0.0), distance)

    return min(range(len(segments)), key=lambda index: score(segments[index]))
