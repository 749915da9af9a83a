from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from squeezer.data.dataset import (
    AsrDataset,
    ctc_frames_needed,
    filter_cuts,
    make_dataloader,
    speed_perturb,
)
from squeezer.data.importers import import_nemo_manifest
from squeezer.features import LogMelFrontend
from squeezer.text import CharTokenizer
from tests.data.test_importers import tone

TOKENIZER = CharTokenizer()


def frames_at_40ms(samples: int) -> int:
    return samples // 640 + 1


@pytest.fixture
def cuts(tmp_path: Path):
    entries = []
    for index, seconds in enumerate([0.05, 0.6, 0.9, 1.2, 1.5, 2.0, 25.0]):
        name = f"utt{index}.wav"
        tone(tmp_path / name, seconds=seconds)
        entries.append({"audio_filepath": name, "duration": seconds, "text": f"hello {index}"})
    entries.append({"audio_filepath": "utt3.wav", "duration": 1.2, "text": "cafe ß"})
    entries.append({"audio_filepath": "utt1.wav", "duration": 0.6, "text": "a" * 40})
    manifest = tmp_path / "m.json"
    manifest.write_text("\n".join(json.dumps(e) for e in entries))
    return import_nemo_manifest(manifest).cuts


def test_ctc_frames_needed_counts_repeats():
    assert ctc_frames_needed([1, 2, 3]) == 3
    assert ctc_frames_needed([1, 1, 2, 2, 2]) == 8
    assert ctc_frames_needed([]) == 0


def test_filter_counts_every_reason(cuts):
    kept, report = filter_cuts(cuts, TOKENIZER.encode, frames_at_40ms, 0.1, 20.0)
    assert report.kept == len(kept) == 5
    assert report.dropped == {
        "shorter than 0.1 s": 1,
        "longer than 20.0 s": 1,
        "text the tokenizer cannot encode": 1,
        "more tokens than encoder frames (CTC cannot align)": 1,
    }
    assert "kept 5" in report.summary()


def test_dataset_batches_features_and_targets(cuts):
    kept, _ = filter_cuts(cuts, TOKENIZER.encode, frames_at_40ms, 0.1, 20.0)
    frontend = LogMelFrontend()
    batch = AsrDataset(frontend, TOKENIZER.encode)[kept]
    assert len(batch) == 5
    assert batch.features.shape[0] == 5 and batch.features.shape[2] == 80
    samples = torch.tensor([round(c.duration * 16000) for c in kept])
    assert torch.equal(batch.feature_lengths, frontend.output_lengths(samples))
    first = batch.targets[0, : batch.target_lengths[0]].tolist()
    assert first == TOKENIZER.encode(batch.texts[0])
    assert torch.all(
        batch.targets[batch.target_lengths.argmin(), batch.target_lengths.min() :] == 0
    )


def test_broken_audio_is_left_out_of_its_batch(cuts, tmp_path, caplog):
    kept, _ = filter_cuts(cuts, TOKENIZER.encode, frames_at_40ms, 0.1, 20.0)
    victim = next(iter(kept)).recording.sources[0].source
    Path(victim).write_bytes(b"RIFF....WAVEfmt garbage")
    batch = AsrDataset(LogMelFrontend(), TOKENIZER.encode)[kept]
    assert len(batch) == 4
    assert victim.split("/")[-1] in caplog.text


def test_loader_batches_by_duration_and_covers_the_epoch(cuts):
    kept, _ = filter_cuts(cuts, TOKENIZER.encode, frames_at_40ms, 0.1, 20.0)
    dataset = AsrDataset(LogMelFrontend(), TOKENIZER.encode)
    loader = make_dataloader(kept, dataset, max_batch_seconds=2.5, shuffle=True, seed=3)
    seen = []
    for batch in loader:
        seen.extend(batch.ids)
        duration = sum(kept[i].duration for i in batch.ids)
        assert duration <= 2.5 or len(batch) == 1
    assert sorted(seen) == sorted(kept.ids)


def test_speed_perturb_changes_tempo_and_pitch_together():
    t = torch.arange(16000) / 16000
    waveform = torch.sin(2 * torch.pi * 440 * t).numpy().astype("float32")  # 1 s of 440 Hz
    assert speed_perturb(waveform, 1.0) is waveform
    for factor in (0.9, 1.1):
        faster = speed_perturb(waveform, factor)
        assert faster.dtype == waveform.dtype
        assert abs(len(faster) - 16000 / factor) <= 1
        spectrum = torch.fft.rfft(torch.from_numpy(faster)).abs()
        peak_hz = int(spectrum.argmax()) * 16000 / len(faster)
        # Bins 16000 / len <= 1.1 Hz apart; the peak bin is 70x its runner-up, so rounding
        # cannot move it (measured: within 0.02 Hz).
        assert peak_hz == pytest.approx(440 * factor, abs=2)
    with pytest.raises(ValueError, match="positive"):
        speed_perturb(waveform, 0.0)


def test_dataset_speed_perturbs_each_cut_by_one_of_its_factors(cuts):
    kept, _ = filter_cuts(cuts, TOKENIZER.encode, frames_at_40ms, 0.1, 20.0)
    frontend = LogMelFrontend()
    samples = torch.tensor([round(c.duration * 16000) for c in kept])
    torch.manual_seed(0)
    batch = AsrDataset(frontend, TOKENIZER.encode, speed_factors=(1.25,))[kept]
    expected = frontend.output_lengths(torch.round(samples / 1.25).long())
    assert (batch.feature_lengths - expected).abs().max() <= 1
    unperturbed = frontend.output_lengths(samples)
    dataset = AsrDataset(frontend, TOKENIZER.encode, speed_factors=(0.8, 1.0))
    seen = set()
    for _ in range(8):
        lengths = dataset[kept].feature_lengths
        seen |= {"slower" if n > m else "same" for n, m in zip(lengths, unperturbed, strict=True)}
    assert seen == {"slower", "same"}  # both factors are drawn
    with pytest.raises(ValueError, match="positive"):
        AsrDataset(frontend, TOKENIZER.encode, speed_factors=(1.0, -0.9))
