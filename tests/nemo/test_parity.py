"""NeMo 2.7.3's own outputs (tests/fixtures/nemo, made by tools/make_nemo_fixtures.py) against
squeezer's on the imported models: features, log-probs (alone and batched), lengths, text."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

import squeezer
from squeezer.audio import load_audio
from squeezer.decoding import greedy_decode
from squeezer.model import AsrModel
from squeezer.nemo import import_nemo
from squeezer.transcribe import transcribe

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nemo"
MODELS = ["squeezeformer_unet_bpe", "conformer_striding_bpe", "fastconformer_dw8_bpe",
          "squeezeformer_char"]  # fmt: skip
AUDIO = [FIXTURES / "audio" / f"utt{index}.wav" for index in range(3)]
# NeMo's float32 outputs against ours: a few float32 roundings of features (|x| < 10) and of
# log-probs (|x| < 60, one ulp 3.8e-6) apart, under any CPU's kernels, because the fixtures are
# well-conditioned (test_fixture_audio_is_well_conditioned; tools/make_nemo_fixtures.py).
TOLERANCE = 1e-4


class Case(NamedTuple):
    """A fixture's name, its model loaded straight from the .nemo file, NeMo's arrays."""

    name: str
    model: AsrModel
    reference: dict[str, np.ndarray]


@pytest.fixture(scope="module", params=MODELS)
def case(request: pytest.FixtureRequest) -> Case:
    model = squeezer.load_model(FIXTURES / f"{request.param}.nemo")
    with np.load(FIXTURES / f"{request.param}.npz", allow_pickle=False) as arrays:
        return Case(request.param, model, dict(arrays))


def _waveforms() -> list[torch.Tensor]:
    return [torch.from_numpy(load_audio(path)) for path in AUDIO]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    waves = _waveforms()
    lengths = torch.tensor([wave.numel() for wave in waves])
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), lengths


def _blank_first(log_probs: np.ndarray) -> np.ndarray:
    """NeMo's (T, V + 1) with the blank last -> squeezer's order, blank first."""
    return np.concatenate([log_probs[..., -1:], log_probs[..., :-1]], axis=-1)


def _max_difference(ours: torch.Tensor, theirs: np.ndarray) -> float:
    assert tuple(ours.shape) == theirs.shape
    return float(np.abs(ours.detach().numpy() - theirs).max())


@torch.no_grad()
def test_features_match_nemo_alone_and_batched(case: Case) -> None:
    _, model, reference = case
    for index, wave in enumerate(_waveforms()):
        features, lengths = model.frontend(wave[None], torch.tensor([wave.numel()]))
        assert _max_difference(features[0], reference[f"alone{index}_features"]) < TOLERANCE
        assert lengths.tolist() == reference[f"alone{index}_feature_length"].tolist()
    features, lengths = model.frontend(*_batch())
    assert _max_difference(features, reference["batch_features"]) < TOLERANCE
    assert lengths.tolist() == reference["batch_feature_lengths"].tolist()


@torch.no_grad()
def test_fixture_audio_is_well_conditioned(case: Case) -> None:
    """One float32 ulp on every sample moves the features by under a tenth of TOLERANCE.

    Another CPU's FFT kernels (MKL's AVX2/AVX-512 paths against its generic one) differ by a few
    float32 roundings; a fixture whose features jump under such a nudge passes on the machine
    that made it and fails elsewhere. This check catches that on any CPU, even where MKL
    ignores MKL_CBWR.
    """
    _, model, _ = case
    generator = torch.Generator().manual_seed(0)
    for wave in _waveforms():
        up = torch.rand(wave.shape, generator=generator) < 0.5
        nudged = torch.nextafter(wave, torch.where(up, torch.inf, -torch.inf))
        lengths = torch.tensor([wave.numel()])
        features, _ = model.frontend(wave[None], lengths)
        moved, _ = model.frontend(nudged[None], lengths)
        assert (moved - features).abs().max() < TOLERANCE / 10


@torch.no_grad()
def test_log_probs_match_nemo_for_each_utterance_alone(case: Case) -> None:
    _, model, reference = case
    for index, wave in enumerate(_waveforms()):
        out = model.log_probs(wave[None], torch.tensor([wave.numel()]))
        assert out.lengths.tolist() == reference[f"alone{index}_length"].tolist()
        frames = int(out.lengths[0])
        theirs = _blank_first(reference[f"alone{index}_log_probs"][:frames])
        assert _max_difference(out.log_probs[0, :frames], theirs) < TOLERANCE


@torch.no_grad()
def test_log_probs_match_nemo_in_a_padded_batch(case: Case) -> None:
    _, model, reference = case
    out = model.log_probs(*_batch())
    assert out.lengths.tolist() == reference["batch_lengths"].tolist()
    for index, frames in enumerate(out.lengths.tolist()):
        theirs = _blank_first(reference["batch_log_probs"][index, :frames])
        assert _max_difference(out.log_probs[index, :frames], theirs) < TOLERANCE


@torch.no_grad()
def test_greedy_text_is_nemos(case: Case) -> None:
    _, model, reference = case
    texts = reference["texts"].tolist()
    assert [r.text for r in transcribe(model, AUDIO)] == texts
    out = model.log_probs(*_batch())
    assert [model.tokenizer.decode(ids) for ids in greedy_decode(*out)] == texts


def test_imported_directory_gives_the_same_model(case: Case, tmp_path: Path) -> None:
    name, model, reference = case
    loaded = squeezer.load_model(import_nemo(FIXTURES / f"{name}.nemo", tmp_path / "model"))
    waves, lengths = _batch()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.log_probs(waves, lengths).log_probs, model.log_probs(waves, lengths).log_probs
        )
    assert [r.text for r in transcribe(loaded, AUDIO)] == reference["texts"].tolist()
    assert loaded.frontend.config == model.frontend.config


def test_nemo_compat_frontend_is_what_makes_exact_pad_match() -> None:
    """Without NeMo's padded pre-emphasis mask, the last frames of exact_pad features differ."""
    model = squeezer.load_model(FIXTURES / "fastconformer_dw8_bpe.nemo")
    reference = np.load(FIXTURES / "fastconformer_dw8_bpe.npz")["alone0_features"]
    assert model.frontend.config.exact_pad and model.frontend.config.nemo_compat
    plain = type(model.frontend)(model.frontend.config.replace(nemo_compat=False))
    wave = _waveforms()[0]
    features, _ = plain(wave[None], torch.tensor([wave.numel()]))
    assert _max_difference(features[0], reference) > 1e-3
