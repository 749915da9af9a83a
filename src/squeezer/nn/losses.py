"""Losses for the three kinds of sequence task: per-position regression, classification, CTC.

Each takes what the heads return plus lengths or labels, and reduces to one scalar, in float32
at least. They are the ones the Kaggle solutions wrote by hand: L1 on clipped targets with
unknown (NaN) targets skipped and each sequence weighted by its signal-to-noise (Ribonanza),
KL divergence to soft labels (HMS), CTC (ASL fingerspelling).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from squeezer.nn.masks import lengths_to_padding_mask

__all__ = ["classification_loss", "ctc_loss", "position_regression_loss"]

RegressionKind = Literal["l1", "mse"]
ClassificationKind = Literal["cross_entropy", "kl"]


def position_regression_loss(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    lengths: torch.Tensor,
    kind: RegressionKind = "l1",
    sequence_weights: torch.Tensor | None = None,
    target_weights: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Weighted mean error over the known targets of the real positions.

    Args:
        predictions: (B, T, K).
        targets: (B, T, K); NaN marks an unknown target, which adds nothing (and no NaN to
            the gradient).
        lengths: (B,) real positions per sequence; padded positions add nothing.
        kind: "l1" (absolute error) or "mse" (squared error).
        sequence_weights: (B,) non-negative weight of each sequence's entries, e.g.
            log1p(signal-to-noise); None: 1.
        target_weights: (K,) weight of each target column; None: 1.
        clip: (low, high) to clip the targets to before the error (Ribonanza clipped
            reactivities to [0, 1]); None: no clipping.

    Returns:
        sum(w * error) / sum(w) over the counted entries, a float32 scalar; 0 when nothing
        is counted (a batch of unknown targets), with a zero gradient.
    """
    if kind not in ("l1", "mse"):
        raise ValueError(f"kind={kind!r} is not one of l1, mse")
    if predictions.shape != targets.shape or predictions.dim() != 3:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} "
            "must both be (B, T, K)"
        )
    dtype = torch.promote_types(predictions.dtype, torch.float32)
    predictions, targets = predictions.to(dtype), targets.to(dtype)
    real = ~lengths_to_padding_mask(lengths, predictions.size(1))  # (B, T)
    counted = real.unsqueeze(-1) & ~torch.isnan(targets)  # (B, T, K)
    targets = torch.where(counted, targets, 0.0)  # NaN never reaches the arithmetic
    if clip is not None:
        targets = targets.clamp(clip[0], clip[1])
    difference = torch.where(counted, predictions - targets, 0.0)
    error = difference.abs() if kind == "l1" else difference.square()
    weights = counted.to(dtype)
    if sequence_weights is not None:
        weights = weights * sequence_weights.to(dtype).view(-1, 1, 1)
    if target_weights is not None:
        weights = weights * target_weights.to(dtype).view(1, 1, -1)
    return (error * weights).sum() / weights.sum().clamp(min=torch.finfo(dtype).tiny)


def classification_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    kind: ClassificationKind = "cross_entropy",
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy or KL divergence of logits (B, C) to hard or soft labels.

    Args:
        logits: (B, C).
        targets: hard labels (B,) int64, or soft labels (B, C) float, each row a
            distribution (HMS's vote fractions); a hard label is the one-hot distribution.
        kind: "cross_entropy", or "kl" (KL(targets || softmax(logits)): cross-entropy less
            the targets' own entropy, so 0 at a perfect fit to soft labels).
        weights: (B,) per-sequence weights; None: 1.

    Returns:
        The weighted mean over sequences, a float32 scalar.
    """
    if kind not in ("cross_entropy", "kl"):
        raise ValueError(f"kind={kind!r} is not one of cross_entropy, kl")
    log_probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
    if targets.dtype.is_floating_point:
        if targets.shape != logits.shape:
            raise ValueError(
                f"soft labels {tuple(targets.shape)} must match logits {tuple(logits.shape)}"
            )
        targets = targets.to(log_probs.dtype)
        per_sequence = -(targets * log_probs).sum(-1)  # (B,)
        if kind == "kl":
            per_sequence = per_sequence + torch.xlogy(targets, targets).sum(-1)
    else:
        if targets.shape != logits.shape[:1]:
            raise ValueError(
                f"hard labels {tuple(targets.shape)} must be ({logits.size(0)},) class indices"
            )
        # With a one-hot target the entropy is 0: KL and cross-entropy coincide.
        per_sequence = F.nll_loss(log_probs, targets, reduction="none")  # (B,)
    if weights is None:
        return per_sequence.mean()
    weights = weights.to(per_sequence.dtype)
    return (per_sequence * weights).sum() / weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)


def ctc_loss(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    zero_infinity: bool = False,
) -> torch.Tensor:
    """CTC loss per target token, averaged over the batch (blank = 0, as `CtcHead` puts it):
    NeMo's and torch's "mean", a float32 scalar even under bf16.

    log_probs (B, T, V + 1) from `CtcHead`, lengths (B,), targets (B, S) padded token ids in
    1..V, target_lengths (B,). An impossible alignment (a target longer than its frames
    allow) gives inf, which squeezer's training loop skips as a non-finite step;
    `zero_infinity=True` counts it 0 instead.
    """
    return F.ctc_loss(
        log_probs.float().transpose(0, 1),  # (T, B, V + 1), as F.ctc_loss wants it
        targets,
        lengths,
        target_lengths,
        blank=0,
        reduction="mean",
        zero_infinity=zero_infinity,
    )
