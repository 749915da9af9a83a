"""Frame redundancy: known-answer sequences, the hooked encoder, the manifest path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from squeezer import AsrModel, EncoderConfig
from squeezer.analysis.redundancy import (
    INPUT_INDEX,
    block_redundancy,
    frame_similarity,
    load_model_or_preset,
    plot_redundancy,
    redundancy_report,
)
from squeezer.data.importers import import_folder
from squeezer.data.manifests import save_cuts
from squeezer.model import save_model
from squeezer.text import CharTokenizer
from tests.conftest import shrink

THETA = 0.3  # radians per frame
K = 6


def rotating(frames: int, dim: int = 5, phase: float = 0.0) -> torch.Tensor:
    """(frames, dim): unit vectors turning by THETA per frame in the plane of dims 1 and 3."""
    angles = phase + THETA * torch.arange(frames, dtype=torch.float64)
    x = torch.zeros(frames, dim, dtype=torch.float64)
    x[:, 1], x[:, 3] = torch.cos(angles), torch.sin(angles)
    return x


def padded(sequences: list[torch.Tensor], frames: int, garbage: float) -> torch.Tensor:
    """(B, frames, D) with random padding of scale `garbage` after each sequence."""
    batch = torch.randn(len(sequences), frames, sequences[0].size(1), dtype=torch.float64)
    batch *= garbage
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = sequence
    return batch


def test_rotation_gives_cos_k_theta_and_ignores_padding() -> None:
    sequences = [rotating(20), rotating(12, phase=1.0), rotating(3, phase=2.0)]
    lengths = torch.tensor([20, 12, 3])
    expected = torch.cos(THETA * torch.arange(1, K + 1, dtype=torch.float64))
    results = [frame_similarity(padded(sequences, 24, g), lengths, K) for g in (0.0, 1.0, 1e3)]
    for result in results:
        torch.testing.assert_close(result, expected)  # float64 defaults (1e-7): measured 1e-16


def test_constant_and_alternating_sequences() -> None:
    v = torch.randn(7)
    constant = v.expand(1, 10, 7)
    alternating = (v * torch.tensor([1.0, -1.0]).repeat(5).unsqueeze(1)).unsqueeze(0)  # (1, 10, 7)
    lengths = torch.tensor([10])
    # float32 inputs are widened exactly and compared in float64: ~1e-16 (measured 2e-16).
    torch.testing.assert_close(frame_similarity(constant, lengths, K), torch.ones(K).double())
    signs = torch.tensor([(-1.0) ** k for k in range(1, K + 1)]).double()
    torch.testing.assert_close(frame_similarity(alternating, lengths, K), signs)


def test_mean_is_over_pairs_and_too_far_is_nan() -> None:
    v = torch.randn(3)
    ones = v.expand(10, 3)  # 9 pairs at k=1, similarity 1
    flips = v * torch.tensor([1.0, -1.0, 1.0, -1.0]).unsqueeze(1)  # 3 pairs at k=1, similarity -1
    batch = padded([ones.double(), flips.double()], 10, garbage=5.0)
    result = frame_similarity(batch, torch.tensor([10, 4]), 12)
    assert result[0].item() == pytest.approx((9 - 3) / 12)  # float64 cosines of +-v: ~1e-16
    assert result[3].item() == pytest.approx(1.0)  # the short one has no pair 4 apart
    assert math.isnan(result[9].item()) and math.isnan(result[11].item())  # T - 1 = 9 at most


def test_centering_removes_a_shared_offset() -> None:
    offset = torch.zeros(1, 20, 5, dtype=torch.float64)
    offset[..., 0] = 10.0  # a direction every frame shares, orthogonal to the rotation
    x = rotating(20).unsqueeze(0) + offset
    lengths = torch.tensor([20])
    assert frame_similarity(x, lengths, 4).min() > 0.98  # the raw cosine sees the offset
    # The rotation's own mean is not zero over 20 frames, so compare with its centred self.
    centred = frame_similarity(rotating(20).unsqueeze(0), lengths, 4, center=True)
    # float64: removing the offset 10 leaves ~10 eps64 = 2e-15, far inside the 1e-7 default.
    torch.testing.assert_close(frame_similarity(x, lengths, 4, center=True), centred)


def test_rejects_a_distance_below_one() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        frame_similarity(torch.randn(1, 5, 3), torch.tensor([5]), 0)


@pytest.fixture(scope="module")
def tiny_model() -> AsrModel:
    config = shrink(EncoderConfig.preset("squeezeformer-xs"), input_dim=80)  # reduce 1, recover 3
    torch.manual_seed(0)
    return AsrModel(config, vocab_size=10).train()  # training mode: must be restored after


def test_block_redundancy_rows_rates_and_hooks(tiny_model: AsrModel) -> None:
    batches = [
        (torch.randn(2, 61, 80), torch.tensor([61, 40])),
        (torch.randn(3, 45, 80), torch.tensor([45, 45, 30])),
    ]
    report = block_redundancy(tiny_model, batches, max_distance=4, name="tiny")
    assert [row.index for row in report.blocks] == [INPUT_INDEX, 0, 1, 2, 3]
    assert [row.frame_ms for row in report.blocks] == [40.0, 40.0, 80.0, 80.0, 40.0]
    assert report.utterances == 5 and report.model == "tiny"
    values = torch.tensor([row.similarity for row in report.blocks])
    assert values.shape == (5, 4) and bool(((values >= -1) & (values <= 1)).all())
    full_rate = 16 + 10 + 12 + 12 + 8  # ceil(T / 4); half rate: ceil of half of each
    assert [row.frames for row in report.blocks] == [full_rate, full_rate, 29, 29, full_rate]
    assert all(not block._forward_hooks for block in tiny_model.encoder.blocks)
    assert tiny_model.encoder.training


def test_block_redundancy_is_independent_of_batching(tiny_model: AsrModel) -> None:
    """Pair sums pooled over batches: one padded batch equals each utterance on its own."""
    a, b = torch.randn(1, 61, 80), torch.randn(1, 37, 80)
    together = torch.cat([a, torch.nn.functional.pad(b, (0, 0, 0, 24), value=9.0)])
    joint = block_redundancy(tiny_model.encoder, [(together, torch.tensor([61, 37]))], 5)
    apart = block_redundancy(
        tiny_model.encoder, [(a, torch.tensor([61])), (b, torch.tensor([37]))], 5
    )
    for one, other in zip(joint.blocks, apart.blocks, strict=True):
        # Cosines (|c| <= 1) of float32 frames that batching only reorders (relative ~1e-6):
        # measured <= 5e-8 under MKL_CBWR, ATEN_CPU_CAPABILITY and 1 or 2 threads.
        torch.testing.assert_close(one.similarity, other.similarity, atol=1e-4, rtol=0)
        assert one.frames == other.frames


def test_report_markdown_dict_and_plot(tiny_model: AsrModel, tmp_path) -> None:
    batches = [(torch.randn(1, 13, 80), torch.tensor([13]))]  # 4 frames; 2 at half rate
    report = block_redundancy(tiny_model, batches, max_distance=3)
    table = report.to_markdown()
    assert "| input | 40 ms |" in table and "| block 2 | 80 ms |" in table
    assert "| - |" in table  # half-rate rows have no pair 2 apart
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["blocks"][2]["similarity"][1] is None and data["mean_over"] == "frame pairs"
    path = plot_redundancy(report, tmp_path / "plots" / "redundancy.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_model_or_preset(tmp_path) -> None:
    first, second = load_model_or_preset("conformer-s"), load_model_or_preset("conformer-s")
    assert not first.training
    for p, q in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(p, q)  # seeded: the same untrained model every time
    tokenizer = CharTokenizer()
    config = shrink(EncoderConfig.preset("squeezeformer-xs"), input_dim=80)
    save_model(AsrModel(config, tokenizer.vocab_size), tmp_path / "model", tokenizer)
    assert load_model_or_preset(str(tmp_path / "model")).config == config
    with pytest.raises(ValueError, match="neither a model directory nor a preset"):
        load_model_or_preset("squeezeformer-xxl")


def test_redundancy_report_end_to_end(tmp_path) -> None:
    """A folder of tone WAVs -> manifest -> report for an untrained preset."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for number, (hertz, seconds) in enumerate([(220, 0.6), (440, 0.9), (330, 0.4)]):
        time = np.arange(int(16000 * seconds)) / 16000
        sf.write(folder / f"tone{number}.wav", 0.3 * np.sin(2 * np.pi * hertz * time), 16000)
        (folder / f"tone{number}.txt").write_text("a tone")
    manifest = save_cuts(import_folder(folder).cuts, tmp_path / "tones.jsonl.gz")
    report = redundancy_report("squeezeformer-xs", manifest, max_distance=4, max_utterances=2)
    assert report.utterances == 2 and report.model == "squeezeformer-xs"
    assert len(report.blocks) == 17
    assert [row.frame_ms for row in report.blocks[8:16]] == [80.0] * 8  # blocks 7-14
    one_by_one = redundancy_report("squeezeformer-xs", manifest, 4, 2, max_batch_seconds=0.5)
    for joint, apart in zip(report.blocks, one_by_one.blocks, strict=True):
        # As above, through 16 blocks of width 144: measured <= 1.2e-8.
        torch.testing.assert_close(joint.similarity, apart.similarity, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="max_utterances"):
        redundancy_report("squeezeformer-xs", manifest, max_utterances=0)
