"""Which blocks does a trained encoder rely on? Its test error with blocks skipped.

A block skipped here returns its input unchanged (its residual branches contribute nothing);
the U-Net's half-rate branch skipped means `TimeRecovery` returns the skip connection alone, so
the reduction and every block at half rate contribute nothing. A block whose removal leaves the
error where it was has learned little the rest cannot do without; a half-rate branch whose
removal costs nothing means the Squeezeformer trained only its full-rate blocks. The
contribution norms say the same from the activations: at the recovery, the mean L2 norm per
frame of the half-rate branch's term (`linear(repeat(x))`) against that of the skip.

`half_rate_fit` asks whether the half-rate blocks could carry the transcript at all: CTC needs
a frame per token (and one more per repeated token), so a transcript with more of those than
the half-rate blocks have frames can only be aligned at full rate. The paper's regime
(128 SentencePiece tokens, 80 ms frames at half rate) leaves room; characters at 80 ms do not.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from lhotse import CutSet

from squeezer.data.dataset import AsrDataset, ctc_frames_needed, cut_text
from squeezer.decoding import greedy_decode
from squeezer.model import AsrModel
from squeezer.scoring import ErrorRates, error_rates

__all__ = [
    "BypassRow",
    "FeatureBatch",
    "HalfRateFit",
    "RecoveryNorms",
    "attention_entropy",
    "bypass_markdown",
    "bypass_table",
    "bypassed",
    "feature_batches",
    "greedy_rates",
    "half_rate_blocks",
    "half_rate_fit",
    "official_half_rate_span",
    "recovery_norms",
]


@dataclass(frozen=True)
class BypassRow:
    """Greedy test error rates with `blocks` skipped (and the half-rate branch, if `branch`)."""

    label: str
    blocks: tuple[int, ...]
    branch: bool
    wer: float
    cer: float


@dataclass(frozen=True)
class RecoveryNorms:
    """Mean L2 norm per valid frame at the U-Net's recovery: the skip and the branch's term."""

    skip: float
    branch: float


def half_rate_blocks(model: AsrModel) -> tuple[int, ...]:
    """The blocks that run at half rate (empty without a U-Net)."""
    config = model.encoder.config
    if config.time_reduce_idx is None:
        return ()
    end = config.time_recover_idx if config.time_recover_idx is not None else config.num_layers
    return tuple(range(config.time_reduce_idx, end))


def official_half_rate_span(num_layers: int) -> tuple[int, ...]:
    """The blocks a Squeezeformer of `num_layers` blocks runs at half rate in the official
    configs (reduce before block L/2 - 1, recover before the last): the same surgery for a
    Conformer of that depth."""
    return tuple(range(num_layers // 2 - 1, num_layers - 1))


@contextmanager
def bypassed(model: AsrModel, blocks: tuple[int, ...] = (), branch: bool = False) -> Iterator[None]:
    """Within the block, `model`'s `blocks` return their input and, with `branch`, its
    `TimeRecovery` returns the skip alone (ValueError for a model without one)."""
    encoder = model.encoder
    if any(not 0 <= index < len(encoder.blocks) for index in blocks):
        raise ValueError(f"blocks {list(blocks)}: the encoder has {len(encoder.blocks)} blocks")
    if branch and encoder.time_recovery is None:
        raise ValueError("no half-rate branch to bypass: the encoder has no TimeRecovery")
    handles = [
        encoder.blocks[index].register_forward_hook(lambda module, args, output: args[0])
        for index in blocks
    ]
    if branch:  # TimeRecovery.forward(x, skip) -> skip
        hook = encoder.time_recovery.register_forward_hook(lambda module, args, output: args[1])
        handles.append(hook)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class FeatureBatch:
    """Features of some test utterances, computed once and shared by every bypass."""

    features: torch.Tensor  # (B, T, F)
    lengths: torch.Tensor  # (B,)
    texts: list[str]


def feature_batches(
    model: AsrModel, cuts: CutSet, max_batch_seconds: float = 60.0
) -> list[FeatureBatch]:
    """`cuts` in manifest order as feature batches of at most `max_batch_seconds` of audio
    (unreadable cuts left out), so that each bypass costs one forward pass, not a decode."""
    dataset = AsrDataset(copy.deepcopy(model.frontend).cpu(), encode=None)
    batches, group, seconds = [], [], 0.0
    for cut in [*cuts, None]:  # None flushes the last group
        if group and (cut is None or seconds + cut.duration > max_batch_seconds):
            batch = dataset[CutSet.from_cuts(group)]
            if len(batch):
                batches.append(FeatureBatch(batch.features, batch.feature_lengths, batch.texts))
            group, seconds = [], 0.0
        if cut is not None:
            group.append(cut)
            seconds += cut.duration
    return batches


@torch.no_grad()
def greedy_rates(model: AsrModel, batches: list[FeatureBatch]) -> ErrorRates:
    """Greedy-decoded error rates of the model over the batches."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; load it with squeezer.load_model(dir)")
    references, hypotheses = [], []
    for batch in batches:
        out = model(batch.features.to(model.device), batch.lengths.to(model.device))
        decoded = greedy_decode(out.log_probs, out.lengths)
        hypotheses += [model.tokenizer.decode(tokens) for tokens in decoded]
        references += batch.texts
    return error_rates(references, hypotheses)


def bypass_table(
    model: AsrModel, batches: list[FeatureBatch], group: tuple[int, ...] | None = None
) -> list[BypassRow]:
    """Greedy error rates over `batches`: intact, every block skipped alone, the half-rate
    branch skipped (U-Net models), and `group` skipped together (e.g. a Conformer's blocks at
    the positions of a Squeezeformer's half-rate branch, for the same surgery on both)."""
    variants = [("none", (), False)]
    variants += [(f"block {i}", (i,), False) for i in range(len(model.encoder.blocks))]
    span = half_rate_blocks(model)
    if span:
        variants.append((f"half-rate branch (blocks {span[0]}-{span[-1]})", span, True))
    if group and tuple(group) != span:
        variants.append((f"blocks {group[0]}-{group[-1]}", tuple(group), False))
    rows = []
    for label, blocks, branch in variants:
        with bypassed(model, blocks, branch):
            rates = greedy_rates(model, batches)
        rows.append(BypassRow(label, blocks, branch, rates.wer, rates.cer))
    return rows


def _encode_hooked(model: AsrModel, batches: list[FeatureBatch], handles: list) -> None:
    """Run the encoder over `batches` for its hooks' sake, then remove the hooks."""
    try:
        for batch in batches:
            model.encoder(batch.features.to(model.device), batch.lengths.to(model.device))
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def recovery_norms(model: AsrModel, batches: list[FeatureBatch]) -> RecoveryNorms | None:
    """Mean per-frame L2 norms of the skip and of the half-rate branch's term at the
    recovery, over the valid frames of `batches`; None without a U-Net."""
    encoder = model.encoder
    if encoder.time_recovery is None:
        return None
    sums = {"skip": 0.0, "branch": 0.0, "frames": 0}
    lengths: list[torch.Tensor] = []

    def remember_lengths(module, args) -> None:  # encoder.forward(x, lengths)
        lengths.append(encoder.output_lengths(args[1].long()))

    def accumulate(module, args, output) -> None:
        skip = args[1]  # (B, T, D)
        valid = torch.arange(skip.size(1), device=skip.device) < lengths[-1][:, None]  # (B, T)
        sums["skip"] += float(skip.norm(dim=-1)[valid].sum())
        sums["branch"] += float((output - skip).norm(dim=-1)[valid].sum())
        sums["frames"] += int(valid.sum())

    hooks = [
        encoder.register_forward_pre_hook(remember_lengths),
        encoder.time_recovery.register_forward_hook(accumulate),
    ]
    _encode_hooked(model, batches, hooks)
    frames = max(sums["frames"], 1)
    return RecoveryNorms(skip=sums["skip"] / frames, branch=sums["branch"] / frames)


@torch.no_grad()
def attention_entropy(model: AsrModel, batches: list[FeatureBatch]) -> list[float]:
    """Per block, the mean entropy of its attention weights over valid query frames, as a
    fraction of the uniform distribution's (log of the utterance's valid frames): near 1 an
    average over the utterance, near 0 every query on one key. A post-LN block whose attention
    collapses onto a few keys outputs nearly the same vector at every frame."""
    encoder = model.encoder
    sums = [0.0] * len(encoder.blocks)
    counts = [0] * len(encoder.blocks)

    def measure(index: int):
        def hook(module, args, kwargs) -> None:  # attn.forward(x, pos_emb, padding_mask, ...)
            x, pos_emb, padding_mask = args
            weights = module.attention_weights(x, pos_emb, padding_mask, **kwargs)  # (B, H, T, T)
            entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)  # (B, H, T)
            valid = ~padding_mask  # (B, T)
            uniform = valid.sum(1).clamp_min(2).double().log()  # (B,)
            relative = entropy.double() / uniform[:, None, None]  # (B, H, T)
            mask = valid[:, None, :].expand_as(relative)
            sums[index] += float(relative[mask].sum())
            counts[index] += int(mask.sum())

        return hook

    hooks = [
        block.attn.register_forward_pre_hook(measure(i), with_kwargs=True)
        for i, block in enumerate(encoder.blocks)
    ]
    _encode_hooked(model, batches, hooks)
    return [total / max(count, 1) for total, count in zip(sums, counts, strict=True)]


@dataclass(frozen=True)
class HalfRateFit:
    """How the transcripts' CTC alignments compare with the half-rate blocks' frames."""

    tokens_per_second: float
    half_rate_frames_per_second: float
    too_long: float  # share of utterances needing more CTC frames than the half rate has


def half_rate_fit(model: AsrModel, cuts: CutSet) -> HalfRateFit | None:
    """Tokens per second of `cuts` under the model's tokenizer against its half-rate frame
    rate, and the share of utterances whose CTC alignment cannot fit at half rate; None
    without a U-Net or a tokenizer."""
    if not half_rate_blocks(model) or model.tokenizer is None or len(cuts) == 0:
        return None
    samples = torch.tensor([round(cut.duration * 16_000) for cut in cuts])
    half = (model.frames_for_samples(samples) + 1) // 2  # ceil(T' / 2), TimeReduction's
    encoded = [model.tokenizer.encode(cut_text(cut)) for cut in cuts]
    needed = torch.tensor([ctc_frames_needed(tokens) for tokens in encoded])
    tokens = sum(len(tokens) for tokens in encoded)
    seconds = sum(cut.duration for cut in cuts)
    return HalfRateFit(
        tokens_per_second=tokens / seconds,
        half_rate_frames_per_second=float(half.sum()) / seconds,
        too_long=float((needed > half).float().mean()),
    )


def bypass_markdown(tables: dict[str, list[BypassRow]]) -> str:
    """One row per bypass, one CER column per model (greedy, percent); '-' where a model has no
    such row."""
    names = list(tables)
    labels = list(dict.fromkeys(row.label for rows in tables.values() for row in rows))
    lines = ["| skipped | " + " | ".join(f"{n} CER" for n in names) + " |",
             "|---|" + "---:|" * len(names)]  # fmt: skip
    for label in labels:
        cells = []
        for name in names:
            row = next((r for r in tables[name] if r.label == label), None)
            cells.append(f"{100 * row.cer:.1f}" if row else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
