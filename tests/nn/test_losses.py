"""Losses: unknown targets and padding ignored (no NaN gradients), weights, soft labels, CTC."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from squeezer.nn import classification_loss, ctc_loss, position_regression_loss


def regression_batch():
    predictions = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(2, 5, 3, dtype=torch.float64)
    targets[0, 1, 2] = float("nan")
    targets[1, 0] = float("nan")
    targets[1, 3:] = 1e9  # padding: never counted
    return predictions, targets, torch.tensor([5, 3])


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_regression_counts_known_targets_of_real_positions_only(kind):
    predictions, targets, lengths = regression_batch()
    loss = position_regression_loss(predictions, targets, lengths, kind=kind)
    counted = ~torch.isnan(targets)
    counted[1, 3:] = False
    difference = (predictions - targets)[counted]
    expected = difference.abs().mean() if kind == "l1" else difference.square().mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(predictions.grad).all()
    assert torch.all(predictions.grad[~counted] == 0)


def test_regression_weights_and_clipping():
    predictions, targets, lengths = regression_batch()
    sequence_weights = torch.tensor([2.0, 0.5], dtype=torch.float64)
    target_weights = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    loss = position_regression_loss(
        predictions, targets, lengths, sequence_weights=sequence_weights,
        target_weights=target_weights, clip=(-0.5, 0.5),
    )  # fmt: skip
    counted = ~torch.isnan(targets)
    counted[1, 3:] = False
    weights = sequence_weights.view(2, 1, 1) * target_weights.view(1, 1, 3) * counted
    clipped = torch.nan_to_num(targets).clamp(-0.5, 0.5)
    expected = ((predictions - clipped).abs() * weights).sum() / weights.sum()
    torch.testing.assert_close(loss, expected)


def test_regression_with_nothing_known_is_zero_with_a_zero_gradient():
    predictions = torch.randn(1, 4, 2, requires_grad=True)
    loss = position_regression_loss(predictions, torch.full((1, 4, 2), float("nan")),
                                    torch.tensor([4]))  # fmt: skip
    loss.backward()
    assert loss.item() == 0 and torch.all(predictions.grad == 0)


def test_regression_refuses_mismatched_shapes_and_unknown_kinds():
    with pytest.raises(ValueError, match=r"\(2, 5, 3\).*\(2, 5, 2\)"):
        position_regression_loss(torch.zeros(2, 5, 3), torch.zeros(2, 5, 2), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="kind='huber'"):
        position_regression_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.tensor([1]),
                                 kind="huber")  # fmt: skip


def test_hard_labels_are_cross_entropy_and_one_hot_soft_labels_agree():
    logits = torch.randn(4, 5, dtype=torch.float64)
    labels = torch.tensor([0, 3, 4, 1])
    hard = classification_loss(logits, labels)
    torch.testing.assert_close(hard, F.cross_entropy(logits, labels))
    one_hot = F.one_hot(labels, 5).double()
    torch.testing.assert_close(classification_loss(logits, one_hot), hard)
    torch.testing.assert_close(classification_loss(logits, one_hot, kind="kl"), hard)


def test_kl_to_soft_labels_is_zero_at_a_perfect_fit_and_cross_entropy_is_their_entropy():
    targets = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    logits = torch.log(targets.clamp(min=1e-300))  # softmax(logits) == targets
    kl = classification_loss(logits, targets, kind="kl")
    assert abs(kl.item()) < 1e-12
    entropy = -torch.xlogy(targets, targets).sum(-1).mean()
    torch.testing.assert_close(classification_loss(logits, targets), entropy)


def test_classification_weights_weigh_sequences():
    logits, labels = torch.randn(3, 4, dtype=torch.float64), torch.tensor([1, 2, 3])
    per = F.cross_entropy(logits, labels, reduction="none")
    weights = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(classification_loss(logits, labels, weights=weights),
                               (per * weights).sum() / 4)  # fmt: skip
    with pytest.raises(ValueError, match="soft labels"):
        classification_loss(logits, torch.rand(3, 5))
    with pytest.raises(ValueError, match="hard labels"):
        classification_loss(logits, torch.tensor([1, 2]))


def test_ctc_loss_is_torchs_mean_with_blank_zero():
    log_probs = torch.randn(2, 12, 6).log_softmax(-1)
    lengths, targets = torch.tensor([12, 9]), torch.tensor([[1, 2, 3], [4, 5, 0]])
    target_lengths = torch.tensor([3, 2])
    expected = F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths)
    torch.testing.assert_close(ctc_loss(log_probs, lengths, targets, target_lengths), expected)
