"""From CutSets to padded batches: filtering, Lhotse's bucketing sampler, on-the-fly features.

The sampler is Lhotse's `DynamicBucketingSampler` (batches by total duration, DDP-aware: each
rank reads its own share); `AsrDataset` turns one sampled CutSet into a batch in a DataLoader
worker: it loads and resamples audio, optionally speed-perturbs it (Kaldi-style: resampled, so
tempo and pitch change together, as in WeNet and icefall recipes), computes log-mel features
and tokenizes the text.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from torch.utils.data import DataLoader, Dataset

from squeezer.audio import SAMPLE_RATE, AudioError, load_audio
from squeezer.features import LogMelFrontend
from squeezer.signals import leave_signals_to_the_main_process

__all__ = [
    "AsrBatch",
    "AsrDataset",
    "FilterReport",
    "SeededSampler",
    "ctc_frames_needed",
    "cut_text",
    "filter_cuts",
    "load_cut_audio",
    "make_dataloader",
    "speed_perturb",
]

log = logging.getLogger(__name__)

MIN_CUTS_FOR_BUCKETS = 8


def cut_text(cut: Cut) -> str:
    """The transcript of a cut: its supervisions' texts joined in order."""
    return " ".join(s.text for s in sorted(cut.supervisions, key=lambda s: s.start) if s.text)


def ctc_frames_needed(tokens: Sequence[int]) -> int:
    """The fewest frames a CTC alignment of `tokens` needs: one per token, one per repeat."""
    repeats = sum(1 for a, b in itertools.pairwise(tokens) if a == b)
    return len(tokens) + repeats


@dataclass
class FilterReport:
    """How many cuts were kept, and how many were dropped for each reason."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        dropped = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.dropped.items()))
        return f"kept {self.kept} utterances; dropped {dropped or 'none'}"


def _drop_reason(
    cut: Cut,
    encode: Callable[[str], list[int]],
    output_frames: Callable[[int], int],
    min_duration: float,
    max_duration: float,
) -> str | None:
    if cut.duration < min_duration:
        return f"shorter than {min_duration} s"
    if cut.duration > max_duration:
        return f"longer than {max_duration} s"
    text = cut_text(cut)
    if not text.strip():
        return "empty transcript"
    try:
        tokens = encode(text)
    except ValueError:
        return "text the tokenizer cannot encode"
    if not tokens:
        return "empty transcript"
    samples = round(cut.duration * SAMPLE_RATE)
    if ctc_frames_needed(tokens) > output_frames(samples):
        return "more tokens than encoder frames (CTC cannot align)"
    return None


def filter_cuts(
    cuts: CutSet,
    encode: Callable[[str], list[int]],
    output_frames: Callable[[int], int],
    min_duration: float = 0.1,
    max_duration: float = 30.0,
) -> tuple[CutSet, FilterReport]:
    """Drop cuts that must not reach the loss, counting each reason.

    Args:
        cuts: the corpus.
        encode: text -> token ids (the tokenizer's `encode`).
        output_frames: audio samples -> encoder output frames (features + encoder lengths).
        min_duration, max_duration: seconds.
    """
    report, kept = FilterReport(), []
    for cut in cuts:
        reason = _drop_reason(cut, encode, output_frames, min_duration, max_duration)
        if reason is None:
            kept.append(cut)
        else:
            report.dropped[reason] += 1
    report.kept = len(kept)
    if report.dropped:
        log.info("filter: %s", report.summary())
    return CutSet.from_cuts(kept), report


def load_cut_audio(cut: Cut, max_seconds: float | None = None) -> np.ndarray:
    """The cut's span of its recording, mono at 16 kHz: float32 (N,)."""
    source = cut.recording.sources[0]
    if source.type != "file":
        raise AudioError(cut.id, f"only file-based recordings are supported, got {source.type}")
    audio = load_audio(source.source, max_seconds=max_seconds)
    start = round(cut.start * SAMPLE_RATE)
    end = start + round(cut.duration * SAMPLE_RATE)
    segment = audio[start:end]
    if segment.size == 0:
        raise AudioError(
            source.source, f"no samples in {cut.start:.2f}-{cut.end:.2f} s", "empty audio"
        )
    return segment


@dataclass
class AsrBatch:
    """features (B, T, F), feature_lengths (B,), targets (B, S) zero-padded, target_lengths.

    `skipped`: the cuts of the sampled batch that could not be read, as (cut id, path,
    `AudioError.kind`, message), so the training loop and `evaluate` can count and report them (a
    DataLoader worker's log lines would reach nobody's summary).
    """

    features: torch.Tensor
    feature_lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    texts: list[str]
    ids: list[str]
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> AsrBatch:
        return AsrBatch(
            self.features.to(device, non_blocking=True),
            self.feature_lengths.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.target_lengths.to(device, non_blocking=True),
            self.texts,
            self.ids,
            self.skipped,
        )


def speed_perturb(waveform: np.ndarray, factor: float) -> np.ndarray:
    """Play `waveform` (N,) at `factor` times its speed: about N / factor samples, pitch and
    formants scaled by `factor` too (a new voice for the model; Ko et al., Interspeech 2015)."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0:
        return waveform
    # Reading the samples as if recorded at factor * 16 kHz and resampling to 16 kHz.
    return soxr.resample(waveform, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def pad_sequences(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D tensors -> (B, max length) zero-padded, and their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    longest = max((len(s) for s in sequences), default=0)
    padded = torch.zeros(len(sequences), longest, dtype=sequences[0].dtype)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded, lengths


class AsrDataset(Dataset):
    """Lhotse-style map dataset: a CutSet (one sampled batch) -> `AsrBatch`.

    A cut whose audio fails to load is left out of its batch and listed in `batch.skipped`
    with the reason, so one bad file never stops training; a batch may therefore come back
    empty (len 0). With `encode=None` (evaluation) the targets are empty and only the texts
    are kept. `speed_factors` (training only): each cut is played at one of them, drawn
    uniformly from a generator seeded by the batch's seed (see `SeededSampler`), so a
    resumed run draws what the uninterrupted run drew, whichever worker reads the batch.
    """

    def __init__(
        self,
        frontend: LogMelFrontend,
        encode: Callable[[str], list[int]] | None,
        max_seconds: float | None = None,
        speed_factors: Sequence[float] = (),
    ) -> None:
        if any(factor <= 0 for factor in speed_factors):
            raise ValueError(f"speed factors must be positive, got {list(speed_factors)}")
        self.frontend = frontend.eval()
        self.encode = encode
        self.max_seconds = max_seconds
        self.speed_factors = tuple(speed_factors)

    def __getitem__(self, item: CutSet | tuple[CutSet, tuple[int, ...]]) -> AsrBatch:
        """One batch from a CutSet, or from (CutSet, seed) as `SeededSampler` yields them."""
        cuts, seed = item if isinstance(item, tuple) else (item, None)
        generator = np.random.default_rng(seed)  # seed None: fresh entropy (evaluation)
        waveforms, targets, texts, ids, skipped = [], [], [], [], []
        for cut in cuts:
            try:
                waveform = load_cut_audio(cut, self.max_seconds)
            except AudioError as error:
                log.warning("skipping %s: %s", cut.id, error)
                skipped.append((cut.id, error.path, error.kind, error.reason))
                continue
            if self.speed_factors:
                pick = int(generator.integers(len(self.speed_factors)))
                waveform = speed_perturb(waveform, self.speed_factors[pick])
            text = cut_text(cut)
            waveforms.append(torch.from_numpy(waveform))
            # Evaluation passes no encoder: references are scored as text, never tokenized.
            tokens = self.encode(text) if self.encode is not None else []
            targets.append(torch.tensor(tokens, dtype=torch.int64))
            texts.append(text)
            ids.append(cut.id)
        if not ids:
            empty = torch.zeros(0, dtype=torch.int64)
            features = torch.zeros(0, 0, self.frontend.config.n_mels)
            no_targets = torch.zeros(0, 0, dtype=torch.int64)
            return AsrBatch(features, empty, no_targets, empty, [], [], skipped)
        audio, audio_lengths = pad_sequences(waveforms)
        with torch.no_grad():
            features, feature_lengths = self.frontend(audio, audio_lengths)
        padded_targets, target_lengths = pad_sequences(targets)
        return AsrBatch(
            features, feature_lengths, padded_targets, target_lengths, texts, ids, skipped
        )


class SeededSampler:
    """A Lhotse sampler whose batches come with a seed: (CutSet, (seed, rank, epoch, index)).

    The random draws made while reading a batch (speed perturbation, in a DataLoader worker)
    then depend on where the batch is in the run and on nothing else: not on which worker reads
    it, how many batches that worker read before, or whether the run was resumed in between.
    `skip(n)` moves to the n-th batch of the current epoch without reading any audio.
    """

    def __init__(self, sampler: DynamicBucketingSampler | SimpleCutSampler, seed: int) -> None:
        self.sampler = sampler
        self.seed = seed
        self.epoch = 0
        self.start = 0  # the index of the next batch in this epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.epoch, self.start = epoch, 0

    def skip(self, batches: int) -> None:
        """Advance past the epoch's first `batches` batches (cut lists only, no audio)."""
        iterator = iter(self.sampler)
        for _ in range(batches):
            next(iterator, None)
        # Lhotse's samplers restore from their own state dict: the next iteration continues.
        self.sampler.load_state_dict(self.sampler.state_dict())
        self.start = batches

    def __iter__(self):
        rank = getattr(self.sampler, "rank", 0)
        for index, cuts in enumerate(self.sampler, start=self.start):
            yield cuts, (self.seed, rank, self.epoch, index)


def make_dataloader(
    cuts: CutSet,
    dataset: AsrDataset,
    max_batch_seconds: float,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    num_buckets: int = 10,
    drop_last: bool = False,
    preemptible: bool = False,
) -> DataLoader:
    """A DataLoader over duration-bucketed batches of about `max_batch_seconds` of audio.

    The sampler (a `SeededSampler`) is DDP-aware (it reads the process group's rank and world
    size) and can skip to a batch of an epoch, so a resumed run continues where it stopped.
    The loader's own generator is seeded from `seed`, so creating its iterator never draws
    from the global torch RNG that dropout and SpecAugment use. `preemptible` (training):
    workers leave SIGTERM and SIGUSR1 to the main process, which checkpoints on them; its
    owner must then shut the workers down itself (`Trainer` does) before the process exits.
    """
    with warnings.catch_warnings():
        # Lhotse suggests lazy manifests for memory; our manifests fit in memory by design.
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        sampler = _sampler(cuts, max_batch_seconds, shuffle, seed, num_buckets, drop_last)
    return DataLoader(
        dataset,
        sampler=SeededSampler(sampler, seed),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        worker_init_fn=leave_signals_to_the_main_process if preemptible else None,
        generator=torch.Generator().manual_seed(seed),
    )


def _sampler(cuts, max_batch_seconds, shuffle, seed, num_buckets, drop_last):
    if len(cuts) < MIN_CUTS_FOR_BUCKETS:
        # Too few cuts to estimate duration buckets (Lhotse needs >= 2 buckets).
        return SimpleCutSampler(
            cuts, max_duration=max_batch_seconds, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    return DynamicBucketingSampler(
        cuts,
        max_duration=max_batch_seconds,
        shuffle=shuffle,
        num_buckets=max(2, min(num_buckets, len(cuts) // 4)),
        seed=seed,
        drop_last=drop_last,
    )
