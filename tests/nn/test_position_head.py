"""The per-position head: bidirectional GRU without packing, padding invariant, exportable."""

from __future__ import annotations

import torch

from squeezer.nn import PositionHead
from squeezer.nn.position_head import reverse_padded


def test_reverse_padded_reverses_each_sequence_within_its_length():
    x = torch.arange(10.0).view(2, 5, 1)
    out = reverse_padded(x, torch.tensor([5, 3]))
    assert out[..., 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    assert torch.equal(reverse_padded(out, torch.tensor([5, 3])), x)  # its own inverse


def test_gru_head_is_the_same_alone_as_in_a_padded_batch():
    head = PositionHead(8, 3, gru_hidden=5).double().eval()
    lengths = torch.tensor([9, 4, 1])
    x = torch.randn(3, 9, 8, dtype=torch.float64)
    x[1, 4:], x[2, 1:] = 1e3, -1e3
    with torch.no_grad():
        batch = head(x, lengths)
        for row, n in enumerate(lengths.tolist()):
            alone = head(x[row : row + 1, :n], lengths[row : row + 1])
            torch.testing.assert_close(batch[row, :n], alone[0], rtol=1e-10, atol=1e-10)
            assert torch.all(batch[row, n:] == 0)


def test_the_backward_direction_carries_the_future_to_the_first_position():
    head = PositionHead(4, 1, gru_hidden=6).double().eval()
    x = torch.randn(1, 7, 4, dtype=torch.float64)
    changed = x.clone()
    changed[0, 6] += 1.0  # only the last real frame
    with torch.no_grad():
        before, after = head(x, torch.tensor([7])), head(changed, torch.tensor([7]))
    assert (before[0, 0] - after[0, 0]).abs().max() > 1e-6


def test_without_gru_it_is_a_linear_map_zeroed_at_padding():
    head = PositionHead(4, 2)
    x = torch.randn(2, 5, 4)
    out = head(x, torch.tensor([5, 2]))
    torch.testing.assert_close(out[0], head.linear(x[0]))
    assert torch.all(out[1, 2:] == 0)
    assert not any("gru" in name for name, _ in head.named_parameters())
