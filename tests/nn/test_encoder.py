from __future__ import annotations

import pytest
import torch

from squeezer import EncoderConfig, SequenceEncoder
from squeezer.nn.feedforward import ScaleBias
from squeezer.nn.unet import TimeRecovery, TimeReduction
from tests.conftest import shrink, small_rungs

RUNGS = small_rungs()
IDS = [name for name, _ in RUNGS]


def padded_batch(lengths: list[int], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(len(lengths), max(lengths), dim)
    lengths_t = torch.tensor(lengths)
    return x, lengths_t


@pytest.mark.parametrize("name, config", RUNGS, ids=IDS)
def test_padding_invariance(name, config):
    # Odd lengths at every stage: 4x subsampling of 61 gives 16 frames, of 53 gives 14, of 29
    # gives 8, and the U-Net then halves odd counts too.
    encoder = SequenceEncoder(config).eval()
    lengths = [61, 53, 29, 7, 90]
    x, lengths_t = padded_batch(lengths, config.input_dim)
    x[lengths_t.unsqueeze(1) <= torch.arange(x.size(1))] = 1e3  # loud garbage in the padding
    with torch.no_grad():
        batch = encoder(x, lengths_t)
        for row, length in enumerate(lengths):
            alone = encoder(x[row : row + 1, :length], lengths_t[row : row + 1])
            n = int(alone.lengths)
            assert int(batch.lengths[row]) == n
            assert alone.features.size(1) == n
            # A batch of another shape only reorders float32 sums (GEMM / conv blocking) in 4
            # blocks of width 32 whose LayerNorm keeps |y| < 4: a few ulps of 4, ~1e-6
            # (measured <= 2.4e-6 under MKL_CBWR, ATEN_CPU_CAPABILITY and 1 or 2 threads).
            diff = (batch.features[row, :n] - alone.features[0]).abs().max()
            assert diff < 1e-4, f"{name}: row {row} differs by {diff}"
            assert torch.all(batch.features[row, n:] == 0)


@pytest.mark.parametrize("subsampling", ["conv2d", "depthwise", "none"])
@pytest.mark.parametrize("recover", [True, False])
def test_output_lengths_match_real_outputs_for_1_to_400(subsampling, recover):
    sizes = dict(num_layers=2, d_model=8, num_heads=2)
    config = shrink(EncoderConfig(), subsampling=subsampling, time_recover_idx=None, **sizes)
    if recover:
        config = config.replace(num_layers=3, time_recover_idx=2)
    encoder = SequenceEncoder(config).eval()
    lengths = torch.arange(1, 401)
    with torch.no_grad():
        for length in lengths.tolist():
            x = torch.randn(1, length, config.input_dim)
            out = encoder(x, torch.tensor([length]))
            assert out.features.size(1) == int(out.lengths[0]), length
            assert int(encoder.output_lengths(torch.tensor([length]))[0]) == out.features.size(1)
    expected = encoder.output_lengths(lengths)
    assert torch.all(expected >= 1)


def test_too_short_or_malformed_inputs_raise():
    config = shrink(EncoderConfig())
    encoder = SequenceEncoder(config)
    x = torch.randn(2, 10, config.input_dim)
    with pytest.raises(ValueError, match="at least 1 frame"):
        encoder(x, torch.tensor([10, 0]))
    with pytest.raises(ValueError, match="exceeds"):
        encoder(x, torch.tensor([10, 11]))
    with pytest.raises(ValueError, match="shape"):
        encoder(torch.randn(2, 10, 3), torch.tensor([10, 10]))
    with pytest.raises(ValueError, match="integer lengths"):
        encoder(x, torch.tensor([10.0, 9.0]))


@pytest.mark.parametrize("name, config", RUNGS, ids=IDS)
def test_gradients_reach_every_parameter(name, config):
    encoder = SequenceEncoder(config).train()
    x, lengths = padded_batch([40, 33], config.input_dim)
    out = encoder(x, lengths)
    (out.features**2).sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"{name}: no gradient for {missing}"


def test_eval_is_deterministic_and_train_is_not():
    config = shrink(EncoderConfig(), dropout=0.5, attention_dropout=0.5)
    encoder = SequenceEncoder(config)
    x, lengths = padded_batch([40, 33], config.input_dim)
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder(x, lengths).features, encoder(x, lengths).features)
        encoder.train()
        assert not torch.equal(encoder(x, lengths).features, encoder(x, lengths).features)


def _module_types(config: EncoderConfig) -> set[type]:
    return {type(m) for m in SequenceEncoder(config).modules()}


def test_disabled_switches_leave_no_modules_behind():
    conformer = _module_types(shrink(EncoderConfig.preset("conformer-m")))
    assert ScaleBias not in conformer
    assert TimeReduction not in conformer and TimeRecovery not in conformer
    squeeze = shrink(EncoderConfig.preset("squeezeformer-sm"))
    assert TimeRecovery not in _module_types(squeeze.replace(time_recover_idx=None))
    assert ScaleBias not in _module_types(squeeze.replace(norm_scheme="pre_post"))
    none = SequenceEncoder(squeeze.replace(subsampling="none"))
    assert not any(isinstance(m, torch.nn.Conv2d) for m in none.subsampling.modules())


def test_glu_and_swish_conv_modules_differ_in_width():
    config = shrink(EncoderConfig())
    swish = SequenceEncoder(config).blocks[0].conv
    glu = SequenceEncoder(config.replace(conv_activation="glu")).blocks[0].conv
    assert swish.depthwise.in_channels == 2 * config.d_model
    assert glu.depthwise.in_channels == config.d_model


def test_generic_sequences_without_subsampling_keep_their_frame_rate():
    sizes = dict(input_dim=6, d_model=16, num_layers=2, num_heads=2)
    config = EncoderConfig(**sizes, subsampling="none", time_reduce_idx=None, time_recover_idx=None)
    encoder = SequenceEncoder(config).eval()
    out = encoder(torch.randn(3, 25, 6), torch.tensor([25, 3, 1]))
    assert out.features.shape == (3, 25, 16)
    assert out.lengths.tolist() == [25, 3, 1]


def test_torch_compile_matches_eager():
    config = shrink(EncoderConfig())
    encoder = SequenceEncoder(config).eval()
    x, lengths = padded_batch([37, 30], config.input_dim)
    # No FX graph cache: its key leaves out the vector ISA, so kernels generated on an AVX-512
    # machine came back from a shared cache under AVX2 (ATEN_CPU_CAPABILITY=avx2) as NaN and
    # garbage, and failed to compile without vectorisation (ATEN_CPU_CAPABILITY=default).
    with torch.no_grad(), torch._inductor.config.patch(fx_graph_cache=False):
        eager = encoder(x, lengths)
        compiled = torch.compile(encoder)(x, lengths)
    assert torch.equal(compiled.lengths, eager.lengths)
    # Fused kernels reorder float32 sums on outputs |y| < 3: ~1e-6 (measured <= 9.5e-7, AVX-512,
    # AVX2 and scalar code), far inside 1e-4 + 1e-4 |y|.
    torch.testing.assert_close(compiled.features, eager.features, atol=1e-4, rtol=1e-4)


def test_hidden_states_are_each_blocks_output_at_its_own_rate():
    config = shrink(EncoderConfig(), subsampling="none")  # U-Net: blocks 1-2 at half rate
    encoder = SequenceEncoder(config).eval()
    x, lengths = torch.randn(2, 9, config.input_dim), torch.tensor([9, 6])
    outputs = []
    hooks = [block.register_forward_hook(lambda m, a, out: outputs.append(out))
             for block in encoder.blocks]  # fmt: skip
    with torch.no_grad():
        result = encoder(x, lengths, return_hidden_states=True)
        plain = encoder(x, lengths)
    for hook in hooks:
        hook.remove()
    assert [h.size(1) for h in result.hidden_states] == [9, 5, 5, 9]
    assert [h.tolist() for h in result.hidden_lengths] == [[9, 6], [5, 3], [5, 3], [9, 6]]
    for hidden, lengths_i, block_out in zip(
        result.hidden_states, result.hidden_lengths, outputs[:4], strict=True
    ):
        for row, n in enumerate(lengths_i.tolist()):
            assert torch.equal(hidden[row, :n], block_out[row, :n])
            assert torch.all(hidden[row, n:] == 0)
    assert torch.equal(result.features, plain.features)
    assert torch.equal(result.hidden_states[-1], result.features)
