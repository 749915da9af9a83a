"""LogMelFrontend against an independent numpy + librosa reference; SpecAugment's masks."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from squeezer.features import (
    FeatureConfig,
    LogMelFrontend,
    SpecAugment,
    SpecAugmentConfig,
    fit_global_stats,
    mel_filterbank,
    sherpa_features,
)

HOP = 160
EPS32 = torch.finfo(torch.float32).eps
# Two float32 runs over the same frames (different batch shapes, kernels or threads) agree
# within twice test_matches_librosa_reference's bound on each run's error: 2 x 5e-4. Padding
# leaking in moves log-mels by O(1) (one leaked sample: 0.6 to 2.3 on these signals).
LOG_MEL_TOL = 1e-3


def reference_log_mel(signal: np.ndarray, normalize: bool) -> np.ndarray:
    """The default FeatureConfig in float64 numpy + librosa: (T, 80)."""
    x = signal.astype(np.float64)
    emphasised = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    spectrum = librosa.stft(
        emphasised,
        n_fft=512,
        hop_length=HOP,
        win_length=400,
        window=np.hanning(400),  # symmetric Hann, as NeMo's torch.hann_window(periodic=False)
        center=True,
        pad_mode="constant",
    )
    filters = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=80, fmin=0, fmax=8000, htk=False)
    log_mel = np.log(filters.astype(np.float64) @ np.abs(spectrum) ** 2 + 2.0**-24).T
    if normalize:
        mean, std = log_mel.mean(axis=0), log_mel.std(axis=0, ddof=1)
        log_mel = (log_mel - mean) / (std + 1e-5)
    return log_mel


def speech_level_noise(length: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(length)).astype(np.float32)


def run(frontend: LogMelFrontend, signals: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad `signals` into one batch and run the frontend."""
    batch = torch.zeros(len(signals), max(len(s) for s in signals))
    for row, signal in enumerate(signals):
        batch[row, : len(signal)] = torch.from_numpy(signal)
    return frontend(batch, torch.tensor([len(s) for s in signals]))


@pytest.mark.parametrize(
    ("low", "high", "n_mels", "rate", "n_fft"),
    [(0.0, 8000.0, 80, 16_000, 512), (20.0, 3800.0, 40, 8_000, 256), (0.0, None, 64, 22_050, 1024)],
)
def test_mel_filterbank_matches_librosa(low, high, n_mels, rate, n_fft) -> None:
    ours = mel_filterbank(rate, n_fft, n_mels, low, high).numpy()
    theirs = librosa.filters.mel(
        sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=low, fmax=high, htk=False, norm="slaney"
    )
    assert ours.shape == theirs.shape
    # Both built in float64 and rounded once to float32: at most one float32 ulp apart (6e-8
    # at weights <= 1; measured <= 2e-9 under every MKL / ATen / thread setting).
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_mel_filterbank_without_norm_matches_librosa() -> None:
    ours = mel_filterbank(16_000, 512, 80, norm="none").numpy()
    theirs = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=80, norm=None)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)  # as above (measured: equal)


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")  # librosa, on the 401-sample case
@pytest.mark.parametrize("normalize", ["none", "per_feature"])
def test_matches_librosa_reference(normalize: str) -> None:
    """Max abs difference < 5e-4 against the float64 reference.

    A log-mel's error is its mel power's relative error. Float32 FFT rounding is about eps
    relative to the frame's typical bin, so it is largest in the narrow lowest mel bands, whose
    power pre-emphasis puts ~1e-4 below the frame's: eps x sqrt(1e4) x a few, some 1e-5
    (measured 3.2e-5 there under MKL_CBWR=COMPATIBLE / AVX2, ATEN_CPU_CAPABILITY=default /
    avx2 and 1 or 2 threads; 2e-7 in the median bin).
    Speech-level signals only: a near-silent bin has a per-utterance std near the 1e-5 guard,
    and normalisation then magnifies float32 rounding well past any fixed tolerance.
    """
    frontend = LogMelFrontend(FeatureConfig(normalize=normalize)).eval()
    for seed, length in enumerate([401, 1601, 3999, 12_345]):
        signal = speech_level_noise(length, seed)
        features, frame_lengths = run(frontend, [signal])
        expected = reference_log_mel(signal, normalize == "per_feature")
        assert features.dtype == torch.float32 and features.shape == (1, *expected.shape)
        assert frame_lengths.tolist() == [expected.shape[0]]
        assert np.abs(features[0].numpy() - expected).max() < 5e-4


def reference_kaldi_log_mel(signal: np.ndarray, normalize: bool) -> np.ndarray:
    """`sherpa_features()` in float64 numpy + librosa's filters: (T, 80). Needs N >= 400
    samples (one mirroring at each end)."""
    x = signal.astype(np.float64)
    frames = (len(x) + HOP // 2) // HOP  # Kaldi, snip_edges=false
    index = np.arange(frames)[:, None] * HOP + HOP // 2 - 200 + np.arange(400)  # (T, 400)
    framed = np.pad(x, 400, mode="symmetric")[index + 400]  # x[-1 - s] before, x[2N - 1 - s] after
    framed = np.concatenate([0.03 * framed[:, :1], framed[:, 1:] - 0.97 * framed[:, :-1]], 1)
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    power = np.abs(np.fft.rfft(framed * periodic_hann, 512)) ** 2
    filters = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=80, fmin=0, fmax=8000, htk=False)
    log_mel = np.log(power @ filters.T.astype(np.float64) + 2.0**-24)
    if normalize:  # sherpa-onnx: std over N frames
        log_mel = (log_mel - log_mel.mean(axis=0)) / (log_mel.std(axis=0) + 1e-5)
    return log_mel


@pytest.mark.parametrize("normalize", ["none", "per_feature"])
def test_sherpa_compat_matches_kaldi_reference(normalize: str) -> None:
    """Within 5e-4 of the float64 reference, as test_matches_librosa_reference and for the
    same reason (float32 FFT rounding in the narrow low bands)."""
    frontend = LogMelFrontend(sherpa_features(normalize=normalize)).eval()
    for seed, length in enumerate([401, 1601, 3999, 12_345]):
        signal = speech_level_noise(length, seed)
        features, frame_lengths = run(frontend, [signal])
        expected = reference_kaldi_log_mel(signal, normalize == "per_feature")
        assert frame_lengths.tolist() == [expected.shape[0]] == [(length + 80) // 160]
        assert np.abs(features[0].numpy() - expected).max() < 5e-4


def kaldi_native_fbank(signal: np.ndarray) -> np.ndarray:
    """The log-mels sherpa-onnx computes for a NeMo CTC model, from its own library: (T, 80).

    kaldi-native-fbank floors the log at float32's eps; sherpa-onnx 2.0 then takes NeMo's
    log(mel + 2**-24) for NeMo models (measured: only that makes a trained model's text match
    sherpa-onnx's on 60 of 60 demo test files; the eps floor, 35). The mels above the floor
    are recovered exactly and re-logged so."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.dither = 0
    options.frame_opts.snip_edges = False
    options.frame_opts.remove_dc_offset = False
    options.frame_opts.window_type = "hann"
    options.mel_opts.num_bins = 80
    options.mel_opts.low_freq = 0
    options.mel_opts.high_freq = 0
    options.mel_opts.is_librosa = True
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(16_000, signal.tolist())
    fbank.input_finished()
    frames = [fbank.get_frame(index) for index in range(fbank.num_frames_ready)]
    floored = np.array(frames, dtype=np.float64).reshape(-1, 80)
    assert (floored > np.log(EPS32) + 1).all()  # no mel at the floor: the inversion is exact
    return np.log(np.exp(floored) + 2.0**-24).astype(np.float32)


def test_sherpa_compat_matches_kaldi_native_fbank() -> None:
    """The same frames and log-mels as kaldi-native-fbank with sherpa-onnx's NeMo CTC settings
    (offline-recognizer-ctc-impl.h), from short clips that mirror more than once to the NeMo
    fixture audio. Two float32 implementations, each within 5e-4 of exact: LOG_MEL_TOL
    (measured 1.4e-4)."""
    from squeezer.audio import load_audio

    frontend = LogMelFrontend(sherpa_features(normalize="none")).eval()
    signals = [speech_level_noise(n, n) for n in (1, 79, 80, 81, 100, 239, 240, 399, 401, 1234)]
    fixtures = Path(__file__).parent / "fixtures" / "nemo" / "audio"
    signals += [load_audio(path) for path in sorted(fixtures.glob("*.wav"))]
    for signal in signals:
        expected = kaldi_native_fbank(signal)
        features, frame_lengths = run(frontend, [signal])
        assert frame_lengths.tolist() == [len(expected)], len(signal)
        assert np.abs(features[0].numpy() - expected).max(initial=0) < LOG_MEL_TOL, len(signal)


def test_sherpa_compat_frame_lengths() -> None:
    """(N + hop / 2) // hop frames, as Kaldi with snip_edges=false; 0 samples give 0."""
    frontend = LogMelFrontend(sherpa_features(normalize="none")).eval()
    lengths = torch.arange(0, 2001)
    expected = (lengths + HOP // 2) // HOP
    torch.testing.assert_close(frontend.output_lengths(lengths), expected)
    _, batch_lengths = frontend(torch.zeros(2001, 2000), lengths)
    torch.testing.assert_close(batch_lengths, expected)


def normalisation_tolerance(
    raw: torch.Tensor, normalised: torch.Tensor, normalize: str, raw_diff: torch.Tensor
) -> torch.Tensor:
    """How far normalising can carry a difference of up to `raw_diff` in the log-mels `raw`.

    z = (x - mean) / (std + guard) moves by (|dx| + |dmean| + |z| |dstd|) / (std + guard),
    with |dmean| <= max |dx| and |dstd| <= sqrt(2) max |dx|. To the log-mels' own difference
    add the normalisation's float32 sums, which another batch length may reorder: 8 eps of
    the largest |x| (about 10 ulps). A tiny std leaves z undetermined at float32, and the
    bound says so: an impulse's flat spectrum (1 sample: all_features std 0.03) or two
    near-equal frames (161 samples: per_feature std 2e-4 in one bin).
    """
    if normalize == "none":
        return torch.full_like(raw, LOG_MEL_TOL)
    if normalize == "per_feature" and len(raw) == 1:
        return torch.zeros_like(raw)  # x - mean is exactly 0 over one frame, so z is exactly 0
    x = raw.double()
    std = x.std(0) if normalize == "per_feature" else x.std()  # all_features: one std
    delta = raw_diff + 8 * EPS32 * x.abs().max()
    return delta * (2 + 2 * normalised.abs()) / (std + FeatureConfig().std_guard)


def _config(normalize: str, sherpa: bool) -> FeatureConfig:
    if sherpa:
        return sherpa_features(normalize=normalize, pad_to=16)
    return FeatureConfig(normalize=normalize, pad_to=16)


@pytest.mark.parametrize(
    ("normalize", "sherpa"),
    [("per_feature", False), ("all_features", False), ("none", False), ("per_feature", True),
     ("none", True)],
)  # fmt: skip
def test_each_utterance_alone_equals_its_row_in_a_batch(normalize: str, sherpa: bool) -> None:
    """Also under sherpa_compat, whose frames mirror each utterance at its own end."""
    frontend = LogMelFrontend(_config(normalize, sherpa)).eval()
    raw_frontend = LogMelFrontend(_config("none", sherpa)).eval()
    signals = [speech_level_noise(n, n) for n in (8_000, 1, 161, 3_777, 320, 4_999)]
    batch, lengths = run(frontend, signals)
    raw_batch, _ = run(raw_frontend, signals)
    assert batch.shape[1] % 16 == 0
    for row, signal in enumerate(signals):
        alone, alone_lengths = run(frontend, [signal])
        raw_alone, _ = run(raw_frontend, [signal])
        frames = int(alone_lengths[0])
        assert lengths[row] == frames
        if frames == 0:  # 1 sample under sherpa_compat: (1 + 80) // 160 frames
            assert (batch[row] == 0).all()
            continue
        # A different batch shape only changes float32 rounding (measured <= 1e-6 in the
        # log-mels); normalisation then magnifies it by its conditioning, 1 / std.
        raw = raw_alone[0, :frames]
        raw_diff = (raw_batch[row, :frames] - raw).abs()
        assert raw_diff.max() < LOG_MEL_TOL
        expected = alone[0, :frames]
        tolerance = normalisation_tolerance(raw, expected, normalize, raw_diff.max())
        assert ((batch[row, :frames] - expected).abs() <= tolerance).all()
        assert (batch[row, frames:] == 0).all()


def test_frame_lengths_formula() -> None:
    """1 + N // hop for every N in 1..2000, and each equals the frames a lone run produces."""
    frontend = LogMelFrontend(FeatureConfig(normalize="none")).eval()
    lengths = torch.arange(1, 2001)
    torch.testing.assert_close(frontend.output_lengths(lengths), 1 + lengths // HOP)
    _, batch_lengths = frontend(torch.zeros(2000, 2000), lengths)
    torch.testing.assert_close(batch_lengths, 1 + lengths // HOP)
    edges = [n for k in range(13) for n in (k * HOP - 1, k * HOP, k * HOP + 1) if 0 < n <= 2000]
    for n in [*range(1, 20), *edges, 2000]:
        features, frame_lengths = frontend(torch.randn(1, n), torch.tensor([n]))
        assert features.shape[1] == frame_lengths[0] == 1 + n // HOP, n


def test_zero_samples_give_zero_frames() -> None:
    frontend = LogMelFrontend().eval()
    features, lengths = frontend(torch.randn(2, 800), torch.tensor([800, 0]))
    assert lengths.tolist() == [6, 0]
    assert torch.isfinite(features).all() and (features[1] == 0).all()


def test_nemo2_frame_count_drops_the_final_frame() -> None:
    frontend = LogMelFrontend(FeatureConfig(count_final_frame=False)).eval()
    features, lengths = frontend(torch.randn(1, 1600), torch.tensor([1600]))
    assert features.shape[1] == 11 and lengths.tolist() == [10]
    assert (features[0, 10] == 0).all()


def test_exact_pad_gives_n_over_hop_frames() -> None:
    frontend = LogMelFrontend(FeatureConfig(exact_pad=True)).eval()
    for n in (160, 1599, 1600, 1601):
        features, lengths = frontend(torch.randn(1, n), torch.tensor([n]))
        assert features.shape[1] == lengths[0] == n // HOP


def test_per_feature_statistics_over_real_frames() -> None:
    features, lengths = run(LogMelFrontend().eval(), [speech_level_noise(8000, 0)] * 2)
    real = features[0, : lengths[0]]
    # Float32 log-mels |x| <= 13 carry rounding ~eps |x|; over std >= 0.39 that is 4e-6 per
    # normalised value, and the mean of 51 keeps under one such unit (measured 1.0e-6 on every
    # path, <= 2e-6 over 300 shuffled summation orders).
    torch.testing.assert_close(real.mean(0), torch.zeros(80), atol=2e-5, rtol=0)
    # std / (std + 1e-5) falls short of 1 by 1e-5 / std <= 2.6e-5 (measured 2.6e-5).
    torch.testing.assert_close(real.std(0), torch.ones(80), atol=1e-3, rtol=0)


def test_global_normalisation_from_fitted_stats() -> None:
    raw = LogMelFrontend(FeatureConfig(normalize="none")).eval()
    frontend = LogMelFrontend(FeatureConfig(normalize="global")).eval()
    signals = [speech_level_noise(n, n) for n in (4000, 9000)]
    unfitted, _ = run(frontend, signals)
    features, lengths = run(raw, signals)
    torch.testing.assert_close(unfitted, features)  # mean 0, std 1 until fitted: (x - 0) / 1 exact
    stats = fit_global_stats(features, lengths)
    frontend.set_global_stats(stats)
    normalised, _ = run(frontend, signals)
    real = torch.cat([normalised[i, : lengths[i]] for i in range(2)])
    # float64 stats rounded once to float32 (~eps |mean| / std, ~1e-6) plus a float32 mean of
    # 83 frames: a few 1e-6 at most (measured 4e-7).
    torch.testing.assert_close(real.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    assert set(frontend.state_dict()) == {"global_mean", "global_std"}
    assert not LogMelFrontend().state_dict()  # window and filters follow from the config


def test_dither_only_in_training() -> None:
    frontend = LogMelFrontend(FeatureConfig(dither=1e-3))
    signal = [speech_level_noise(3200, 0)]
    eval_a, _ = run(frontend.eval(), signal)
    eval_b, _ = run(frontend, signal)
    torch.testing.assert_close(eval_a, eval_b, atol=0, rtol=0)  # the same kernels twice: exact
    trained, _ = run(frontend.train(), signal)
    assert not torch.equal(trained, eval_a)


def test_device_follows_the_input() -> None:
    frontend = LogMelFrontend()
    features, lengths = frontend(torch.randn(2, 1000), torch.tensor([1000, 500]))
    assert features.device == lengths.device == torch.device("cpu")
    assert lengths.dtype == torch.int64
    if torch.cuda.is_available():
        cuda_features, _ = frontend.cuda()(torch.randn(2, 1000).cuda(), torch.tensor([1000, 5]))
        assert cuda_features.is_cuda


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_mels": 0}, "n_mels"),
        ({"win_length": 1024}, "win_length"),
        ({"window": "kaiser"}, "window"),
        ({"normalize": "batch"}, "normalize"),
        ({"f_max": 9000.0}, "f_max"),
        ({"preemphasis": 1.5}, "preemphasis"),
        ({"exact_pad": True, "hop_length": 161}, "hop_length"),
        ({"log_guard_value": "huge"}, "log_guard_value"),
        ({"pad_to": -1}, "pad_to"),
        ({"n_fft": 2**30, "win_length": 400}, "n_fft=1073741824 exceeds 65536"),
        ({"n_mels": 100_000}, "n_mels=100000 exceeds 1024"),
        ({"sample_rate": 10**9}, "sample_rate"),
        ({"sherpa_compat": True, "log_guard_type": "clamp"}, "log_guard_type"),
        ({"sherpa_compat": True, "window": "hamming"}, "window"),
        ({"sherpa_compat": True, "normalize": "global"}, "normalize"),
    ],
)
def test_config_errors_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FeatureConfig(**changes)


def test_bad_inputs() -> None:
    frontend = LogMelFrontend()
    with pytest.raises(ValueError, match="lengths"):
        frontend(torch.randn(2, 100), torch.tensor([100, 101]))
    with pytest.raises(ValueError, match="lengths"):
        frontend(torch.randn(2, 100), torch.tensor([100]))
    with pytest.raises(ValueError, match="integer"):
        frontend(torch.randn(1, 100), torch.tensor([100.0]))


# -- SpecAugment ------------------------------------------------------------------------------


def positive_features(lengths: list[int], frames: int, bins: int = 80) -> torch.Tensor:
    """(B, T, F) features > 0 on real frames and 0 on padding, so zeros show the masks."""
    features = torch.rand(len(lengths), frames, bins) + 1.0
    for row, length in enumerate(lengths):
        features[row, length:] = 0.0
    return features


def masked_runs(row: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    edges = torch.cat([torch.zeros(1), row.float(), torch.zeros(1)]).diff()  # +1 opens, -1 closes
    return ((edges == -1).nonzero() - (edges == 1).nonzero()).flatten().tolist()


def test_spec_augment_is_identity_in_eval() -> None:
    augment = SpecAugment().eval()
    features = positive_features([100, 60], 100)
    assert augment(features, torch.tensor([100, 60])) is features


def test_spec_augment_masks_stay_inside_real_frames() -> None:
    lengths = [400, 250, 37, 1]
    augment = SpecAugment(SpecAugmentConfig(time_masks=10)).train()
    for _ in range(20):
        features = positive_features(lengths, 400)
        masked = augment(features, torch.tensor(lengths))
        for row, length in enumerate(lengths):
            torch.testing.assert_close(masked[row, length:], features[row, length:])
        zeroed = masked == 0
        assert zeroed.any()
        assert (masked[~zeroed] == features[~zeroed]).all()


def test_spec_augment_widths_and_counts() -> None:
    config = SpecAugmentConfig(freq_masks=1, freq_width=27, time_masks=1, time_width=0.05)
    augment = SpecAugment(config).train()
    length = 1000
    for _ in range(20):
        masked = augment(positive_features([length], length), torch.tensor([length]))[0]
        time_masked = (masked == 0).all(dim=1)  # (T,) whole frames zeroed
        freq_masked = (masked == 0).all(dim=0)  # (F,) whole bins zeroed
        assert all(run <= 50 for run in masked_runs(time_masked))  # 5 % of 1000 frames
        assert len(masked_runs(time_masked)) <= 1
        assert sum(masked_runs(freq_masked)) <= 27 and len(masked_runs(freq_masked)) <= 1
    config = SpecAugmentConfig(freq_masks=2, time_masks=5, time_width=0.05)
    mask = SpecAugment(config).sample_mask(
        positive_features([length], length), torch.tensor([1000])
    )
    assert mask[0].all(dim=1).sum() <= 5 * 50 and mask[0].all(dim=0).sum() <= 2 * 27


def test_spec_augment_with_masks_wider_than_the_input() -> None:
    config = SpecAugmentConfig(freq_masks=2, freq_width=27, time_masks=3, time_width=10)
    augment = SpecAugment(config).train()
    for _ in range(20):
        features = positive_features([3, 2], 3, bins=8)
        masked = augment(features, torch.tensor([3, 2]))
        assert masked.shape == features.shape
        torch.testing.assert_close(masked[1, 2:], features[1, 2:])


def test_spec_augment_is_reproducible() -> None:
    augment = SpecAugment().train()
    features, lengths = positive_features([500, 300], 500), torch.tensor([500, 300])
    torch.manual_seed(7)
    first = augment(features, lengths)
    torch.manual_seed(7)
    torch.testing.assert_close(augment(features, lengths), first)
    generator = torch.Generator().manual_seed(3)
    other = augment(features, lengths, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(augment(features, lengths, generator=generator), other)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"freq_masks": -1}, "freq_masks"),
        ({"time_width": 1.5}, "time_width"),
        ({"time_width": -2}, "time_width"),
    ],
)
def test_spec_augment_config_errors(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SpecAugmentConfig(**changes)
