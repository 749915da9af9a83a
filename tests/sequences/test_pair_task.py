"""The known-answer pair task: its pairing, its targets, and seeded reproducibility."""

from __future__ import annotations

import pytest
import torch

from squeezer.sequences.pair_task import PAIRED_FRACTION, _functions, pair_task_batch


def test_targets_are_the_partner_and_offset_functions_and_padding_is_empty():
    batch = pair_task_batch(6, 10, 40, torch.Generator().manual_seed(0), offset=5)
    a, b = _functions()
    for row, n in enumerate(batch.lengths.tolist()):
        pair, x, targets = batch.pair[row, :n, :n], batch.features[row, :n], batch.targets[row]
        assert torch.equal(pair, pair.T) and torch.all(pair.sum(1) <= 1)
        assert int(pair.sum()) == 2 * (int(PAIRED_FRACTION * n) // 2)
        partner = pair.argmax(1)
        paired = pair.sum(1) == 1
        torch.testing.assert_close(targets[:n, 0][paired], torch.tanh(x[partner[paired]] @ a))
        assert torch.isnan(targets[:n, 0][~paired]).all()
        torch.testing.assert_close(targets[5:n, 1], torch.tanh(x[: n - 5] @ b))
        assert torch.isnan(targets[:5, 1]).all() and torch.isnan(targets[n:]).all()
        assert torch.all(batch.features[row, n:] == 0) and torch.all(batch.pair[row, n:] == 0)


def test_the_same_seed_gives_the_same_batch():
    first = pair_task_batch(3, 5, 9, torch.Generator().manual_seed(4))
    second = pair_task_batch(3, 5, 9, torch.Generator().manual_seed(4))
    assert torch.equal(first.features, second.features) and torch.equal(first.pair, second.pair)
    with pytest.raises(ValueError, match="2 <= min <= max"):
        pair_task_batch(1, 9, 5, torch.Generator())
