"""Temporal redundancy of encoder frames: cosine similarity of frames k apart, block by block.

The paper's motivation for the Temporal U-Net (Section 3.1, Figure 2): in a trained Conformer,
adjacent frames of the top layer have ~95 % average cosine similarity and frames 4 apart more
than 80 %, and this redundancy grows with depth. `block_redundancy` measures the same on our
encoders with forward hooks on every block; `redundancy_report` runs it over a Lhotse manifest
for a model directory or an (untrained, seeded) preset, the baseline to compare against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lhotse import CutSet
from lhotse.cut import Cut
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.utils.hooks import RemovableHandle

from squeezer.config import EncoderConfig, list_presets
from squeezer.data.dataset import AsrDataset
from squeezer.data.manifests import load_cuts
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.nn.encoder import SequenceEncoder
from squeezer.nn.masks import lengths_to_padding_mask

__all__ = [
    "INPUT_INDEX",
    "BlockSimilarity",
    "RedundancyReport",
    "block_redundancy",
    "frame_similarity",
    "load_model_or_preset",
    "manifest_batches",
    "plot_redundancy",
    "redundancy_report",
]

INPUT_INDEX = -1  # the row for the subsampled input of block 0 (after input scaling and LN)
PRESET_SEED = 0  # untrained presets are initialised from this seed, so reports repeat
PRESET_VOCAB_SIZE = 128  # the paper's SentencePiece vocabulary (the head is not measured)
DEFAULT_BATCH_SECONDS = 60.0  # seconds of audio per batch when reading a manifest


def _pair_sums(
    features: torch.Tensor, valid: torch.Tensor, max_distance: int, center: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of cosine similarity over frame pairs k apart, and the pair counts, k = 1..K.

    Args:
        features: (B, T, D) frame embeddings.
        valid: (B, T) bool, True at real frames; a pair counts only if both frames are real.
        max_distance: K, the largest distance.
        center: subtract each utterance's mean real frame first (see `frame_similarity`).

    Returns:
        sums (K,) float64, counts (K,) int64 (zero where no pair is that far apart).
    """
    if max_distance < 1:
        raise ValueError(f"max_distance={max_distance} must be >= 1")
    T = features.size(1)
    # float64 so that sums over many batches do not lose the last digits; a zero vector has
    # similarity 0 with anything (normalize leaves it zero rather than dividing by zero).
    x, valid = features.detach().double(), valid.to(features.device)
    if center:
        x = x - _mean_frame(x, valid)
    unit = F.normalize(x, dim=-1)  # (B, T, D)
    sums = torch.zeros(max_distance, dtype=torch.float64)
    counts = torch.zeros(max_distance, dtype=torch.int64)
    for k in range(1, min(max_distance, T - 1) + 1):
        cosine = (unit[:, :-k] * unit[:, k:]).sum(-1)  # (B, T - k)
        both = valid[:, :-k] & valid[:, k:]  # (B, T - k)
        sums[k - 1] = cosine.masked_fill(~both, 0.0).sum().cpu()
        counts[k - 1] = both.sum().cpu()
    return sums, counts


def _mean_frame(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), valid (B, T) -> each utterance's mean over its real frames (B, 1, D)."""
    weights = valid.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)


def _mean(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """sums / counts, NaN where nothing was counted."""
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.nan)


def frame_similarity(
    features: torch.Tensor, lengths: torch.Tensor, max_distance: int, center: bool = False
) -> torch.Tensor:
    """Mean cosine similarity of frames k apart, k = 1..max_distance (paper Figure 2).

    The mean is over frame pairs, pooled over the batch: a long utterance weighs more than a
    short one. Padded frames (t >= length) never enter a pair, whatever they hold.

    Args:
        features: (B, T, D) frame embeddings.
        lengths: (B,) real frames per utterance (frames 0..length-1 are real).
        max_distance: K >= 1.
        center: subtract each utterance's mean real frame before comparing. The paper's
            measure is the raw cosine (False); a direction shared by every frame of an
            utterance (biases, a constant offset) pushes the raw cosine towards 1, and
            centring removes it, leaving how much frames vary together over time.

    Returns:
        (K,) float64; NaN at distances no utterance is long enough for.
    """
    valid = ~lengths_to_padding_mask(lengths.to(features.device), features.size(1))
    return _mean(*_pair_sums(features, valid, max_distance, center))


@dataclass(frozen=True)
class BlockSimilarity:
    """One row of the report: a block's output frames (index -1: block 0's input).

    similarity[k - 1] is the mean cosine similarity of frames k apart (NaN: no such pair);
    frames is the number of real frames measured at this row.
    """

    index: int
    frame_ms: float
    similarity: tuple[float, ...]
    frames: int

    @property
    def label(self) -> str:
        return "input" if self.index == INPUT_INDEX else f"block {self.index}"


@dataclass(frozen=True)
class RedundancyReport:
    """Frame similarity per block and distance for one model over a set of utterances."""

    model: str
    utterances: int
    max_distance: int
    blocks: tuple[BlockSimilarity, ...]
    centered: bool = False

    def to_markdown(self) -> str:
        """A blocks x distance table of similarities in %."""
        distances = range(1, self.max_distance + 1)
        header = "| row | frame | " + " | ".join(f"k={k}" for k in distances) + " |"
        rule = "|---|---|" + "---:|" * self.max_distance
        frames = "mean-centred frames" if self.centered else "frames"
        lines = [
            f"Cosine similarity (%) of {frames} k apart; {self.model}, "
            f"{self.utterances} utterances, mean over frame pairs; k counts frames at each "
            "row's own rate.",
            "",
            header,
            rule,
        ]
        for row in self.blocks:
            cells = " | ".join(_percent(value) for value in row.similarity)
            lines.append(f"| {row.label} | {row.frame_ms:g} ms | {cells} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN similarities become None."""
        return {
            "model": self.model,
            "utterances": self.utterances,
            "max_distance": self.max_distance,
            "mean_over": "frame pairs",
            "centered": self.centered,
            "blocks": [
                {
                    "index": row.index,
                    "frame_ms": row.frame_ms,
                    "frames": row.frames,
                    "similarity": [None if math.isnan(v) else v for v in row.similarity],
                }
                for row in self.blocks
            ],
        }


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _block_frame_ms(config: EncoderConfig, index: int, input_frame_ms: float) -> float:
    """Frame period at block `index`'s output: the subsampled rate, doubled under the U-Net."""
    factor = 1 if config.subsampling == "none" else config.subsampling_factor
    period = input_frame_ms * factor
    reduce, recover = config.time_reduce_idx, config.time_recover_idx
    if reduce is not None and reduce <= index < (recover if recover is not None else math.inf):
        return 2 * period
    return period


class _Accumulator:
    """Running pair sums per row (row 0: block 0's input, row i + 1: block i's output)."""

    def __init__(self, rows: int, max_distance: int, center: bool) -> None:
        self.max_distance = max_distance
        self.center = center
        self.sums = torch.zeros(rows, max_distance, dtype=torch.float64)
        self.counts = torch.zeros(rows, max_distance, dtype=torch.int64)
        self.frames = torch.zeros(rows, dtype=torch.int64)

    def add(self, row: int, features: torch.Tensor, padding_mask: torch.Tensor) -> None:
        """features (B, T, D), padding_mask (B, T) True = pad."""
        sums, counts = _pair_sums(features, ~padding_mask, self.max_distance, self.center)
        self.sums[row] += sums
        self.counts[row] += counts
        self.frames[row] += int((~padding_mask).sum())

    def hook(self, index: int) -> Callable[..., None]:
        """A forward hook (with kwargs) recording block `index`'s output, and block 0's input."""

        def record(module, args, kwargs, output) -> None:
            # Blocks are called as block(x, pos_emb, padding_mask): the mask they receive has
            # the half-rate lengths under the U-Net, so each row uses the frames it really saw.
            mask = kwargs["padding_mask"] if "padding_mask" in kwargs else args[2]
            if index == 0:
                x = kwargs["x"] if "x" in kwargs else args[0]
                self.add(0, x, mask)
            self.add(index + 1, output, mask)

        return record


def _encoder_of(model: AsrModel | SequenceEncoder) -> tuple[SequenceEncoder, float]:
    """The encoder and the period (ms) of the features it is fed."""
    if isinstance(model, AsrModel):
        frontend = model.frontend.config
        return model.encoder, 1000.0 * frontend.hop_length / frontend.sample_rate
    if isinstance(model, SequenceEncoder):
        return model, 10.0  # the paper's 10 ms feature hop
    raise TypeError(f"expected an AsrModel or a SequenceEncoder, got {type(model).__name__}")


def _run_hooked(
    encoder: SequenceEncoder,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    accumulator: _Accumulator,
) -> int:
    """Run the encoder (eval, no grad) over the batches with hooks on; returns utterances."""
    handles: list[RemovableHandle] = [
        block.register_forward_hook(accumulator.hook(index), with_kwargs=True)
        for index, block in enumerate(encoder.blocks)
    ]
    was_training, utterances = encoder.training, 0
    device = next(encoder.parameters()).device
    try:
        encoder.eval()  # dropout off: measure the model, not the noise
        with torch.no_grad():
            for features, lengths in batches:
                if features.size(0) == 0:
                    continue
                encoder(features.to(device), lengths.to(device))
                utterances += features.size(0)
    finally:
        for handle in handles:
            handle.remove()
        encoder.train(was_training)
    return utterances


def block_redundancy(
    model: AsrModel | SequenceEncoder,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    max_distance: int = 8,
    name: str = "",
    center: bool = False,
) -> RedundancyReport:
    """Frame similarity at the input of block 0 and the output of every block (Figure 2).

    Pair sums and counts accumulate over all batches, so the result is the mean over every
    frame pair of every utterance, as `frame_similarity` on one big batch would give.

    Args:
        model: an `AsrModel` (its encoder is measured) or a `SequenceEncoder`.
        batches: (features (B, T, F), lengths (B,)) pairs, features as the encoder takes them.
        max_distance: K, the largest frame distance.
        name: what the report calls the model.
        center: compare mean-centred frames (see `frame_similarity`); False is the paper's.

    Returns:
        A report with rows -1 (block 0's input), 0, 1, ... and K similarities per row.
    """
    if max_distance < 1:
        raise ValueError(f"max_distance={max_distance} must be >= 1")
    encoder, input_frame_ms = _encoder_of(model)
    accumulator = _Accumulator(len(encoder.blocks) + 1, max_distance, center)
    utterances = _run_hooked(encoder, batches, accumulator)
    if utterances == 0:
        raise ValueError("no utterances to measure")
    means = _mean(accumulator.sums, accumulator.counts)  # (rows, K)
    rows = []
    for row in range(len(encoder.blocks) + 1):
        index = row - 1
        block = max(index, 0)  # block 0's input runs at block 0's rate
        frame_ms = _block_frame_ms(encoder.config, block, input_frame_ms)
        similarity = tuple(float(v) for v in means[row])
        rows.append(BlockSimilarity(index, frame_ms, similarity, int(accumulator.frames[row])))
    name = name or type(model).__name__
    return RedundancyReport(name, utterances, max_distance, tuple(rows), center)


def load_model_or_preset(spec: str) -> AsrModel:
    """A model directory (`load_model`), or a preset name: an untrained, seeded model, eval mode.

    The untrained preset is the baseline: how similar frames are before any training.
    """
    if Path(spec).is_dir():
        return load_model(spec)
    if spec in list_presets():
        with torch.random.fork_rng(devices=[]):  # seed locally; leave the caller's RNG alone
            torch.manual_seed(PRESET_SEED)
            model = AsrModel(EncoderConfig.preset(spec), vocab_size=PRESET_VOCAB_SIZE)
        return model.eval()
    raise ValueError(
        f"{spec!r} is neither a model directory nor a preset ({', '.join(list_presets())})"
    )


def manifest_batches(
    model: AsrModel,
    cuts: CutSet,
    max_batch_seconds: float = DEFAULT_BATCH_SECONDS,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Feature batches of `cuts` in manifest order, from the model's frontend.

    Each batch holds at most `max_batch_seconds` of audio (or a single longer cut). Batches
    are cut here rather than by `make_dataloader`: its bucketing sampler fails on manifests
    of fewer than 4 cuts, and a measurement needs no shuffling or bucketing.

    Yields:
        features (B, T, F), lengths (B,) per batch.
    """
    dataset = AsrDataset(model.frontend, encode=None)  # texts are not needed
    group: list[Cut] = []
    seconds = 0.0
    for cut in cuts:
        if group and seconds + cut.duration > max_batch_seconds:
            yield _features(dataset, group)
            group, seconds = [], 0.0
        group.append(cut)
        seconds += cut.duration
    if group:
        yield _features(dataset, group)


def _features(dataset: AsrDataset, cuts: list[Cut]) -> tuple[torch.Tensor, torch.Tensor]:
    """features (B, T, F), lengths (B,) of `cuts`."""
    batch = dataset[CutSet.from_cuts(cuts)]  # cuts whose audio fails to load are left out
    return batch.features, batch.feature_lengths


def redundancy_report(
    spec: str,
    manifest: str | Path,
    max_distance: int = 8,
    max_utterances: int = 100,
    max_batch_seconds: float = DEFAULT_BATCH_SECONDS,
    center: bool = False,
) -> RedundancyReport:
    """`squeezer redundancy`: `block_redundancy` of a model or preset on a manifest's first cuts.

    Args:
        spec: a model directory or a preset name (see `load_model_or_preset`).
        manifest: a Lhotse cut manifest; its first `max_utterances` cuts are measured.
        max_distance: K, the largest frame distance.
        max_batch_seconds: audio per batch (memory versus speed).
        center: compare mean-centred frames (see `frame_similarity`); False is the paper's.
    """
    if max_utterances < 1:
        raise ValueError(f"max_utterances={max_utterances} must be >= 1")
    model = load_model_or_preset(spec)
    cuts = load_cuts(manifest).subset(first=max_utterances)
    batches = manifest_batches(model, cuts, max_batch_seconds)
    return block_redundancy(model, batches, max_distance, name=spec, center=center)


def plot_redundancy(report: RedundancyReport, path: str | Path) -> Path:
    """A blocks x distance heatmap of similarity in % (paper Figure 2) as a PNG."""
    values = torch.tensor([row.similarity for row in report.blocks]) * 100  # (rows, K)
    figure = Figure(figsize=(1.0 + 0.55 * report.max_distance, 1.2 + 0.32 * len(report.blocks)))
    axes = figure.add_subplot()
    lowest = float(values.nan_to_num(100.0).min())
    image = axes.imshow(
        values.numpy(), cmap="viridis", vmin=min(0.0, lowest), vmax=100.0, aspect="auto"
    )
    figure.colorbar(image, ax=axes, label="cosine similarity (%)")
    axes.set_xticks(range(report.max_distance), [str(k) for k in range(1, report.max_distance + 1)])
    axes.set_xlabel("distance k (frames at each row's rate)")
    labels = [f"{row.label} ({row.frame_ms:g} ms)" for row in report.blocks]
    axes.set_yticks(range(len(labels)), labels)
    for y, row in enumerate(values.tolist()):
        for x, value in enumerate(row):
            if not math.isnan(value):
                colour = "black" if value > 60 else "white"
                axes.text(x, y, f"{value:.0f}", ha="center", va="center", fontsize=7, color=colour)
    centred = ", centred" if report.centered else ""
    axes.set_title(f"Frame redundancy: {report.model} ({report.utterances} utterances{centred})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)  # headless: render on Agg without touching pyplot's global state
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
