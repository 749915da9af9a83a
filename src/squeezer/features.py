"""Waveforms -> normalised log-mel features (NeMo's recipe); SpecAugment is re-exported.

Pure torch on whatever device the waveforms are on. Padding-aware: every utterance of a padded
batch gets exactly the features it gets alone, and padded frames come out as `pad_value`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from squeezer.audio import SAMPLE_RATE
from squeezer.augment import SpecAugment, SpecAugmentConfig
from squeezer.nn.masks import lengths_to_padding_mask

__all__ = [
    "FeatureConfig",
    "FeatureStats",
    "LogMelFrontend",
    "SpecAugment",
    "SpecAugmentConfig",
    "fit_global_stats",
    "mel_filterbank",
    "sherpa_features",
]

Normalization = Literal["per_feature", "all_features", "global", "none"]
WindowKind = Literal["hann", "hamming", "blackman", "bartlett"]
MelNorm = Literal["slaney", "none"]
LogGuardType = Literal["add", "clamp"]

WIN_LENGTH = 400  # samples: 25 ms at 16 kHz
HOP_LENGTH = 160  # samples: 10 ms at 16 kHz
N_FFT = 512  # NeMo's default: the next power of two above the window
N_MELS = 80
LOG_GUARD = 2.0**-24  # NeMo's log_zero_guard_value: log(x + 2**-24)
STD_GUARD = 1e-5  # NeMo's CONSTANT, added to every standard deviation it divides by

_WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


@dataclass(frozen=True)
class FeatureConfig:
    """The log-mel frontend, one field per choice of NeMo's `AudioToMelSpectrogramPreprocessor`.

    Defaults are the paper's / NeMo's Squeezeformer recipe. NeMo field (NeMo default) per field:

    - sample_rate: `sample_rate` (16000). n_mels: `features` (64; 80 in the recipe).
    - win_length, hop_length (samples): `int(window_size * sample_rate)`,
      `int(window_stride * sample_rate)` (0.02 s, 0.01 s; the recipe: 0.025 s, 0.01 s), or
      `n_window_size` / `n_window_stride`. n_fft: `n_fft` (None = 2**ceil(log2(win_length))).
    - window: `window` ("hann"); NeMo builds it symmetric (`periodic=False`), and so do we.
    - preemphasis: `preemph` (0.97; None disables). y[0] = x[0], y[n] = x[n] - a x[n-1].
    - dither: `dither` (1e-5; 0 here). Gaussian noise of this std on real samples, training only.
    - exact_pad: `exact_pad` (False). False: torch.stft(center=True), zero ("constant")
      padding of n_fft // 2 each side; True: zero-pad (n_fft - hop) // 2 each side, center=False.
      (NeMo pads before its pre-emphasis mask, which then also zeroes that many real samples at
      each utterance's end; we pad after it, on purpose, unless nemo_compat is set.)
    - mag_power: `mag_power` (2.0, the power spectrum).
    - f_min, f_max (Hz): `lowfreq` (0), `highfreq` (None = sample_rate / 2).
    - mel_norm: `mel_norm` ("slaney"; NeMo's None is "none"). The mel scale is always slaney's.
    - log, log_guard_type, log_guard_value: `log` (True), `log_zero_guard_type` ("add"),
      `log_zero_guard_value` (2**-24, or "tiny" / "eps" for torch.finfo of the dtype).
    - normalize: `normalize` ("per_feature": each mel bin's mean and unbiased std over the
      utterance's real frames, x' = (x - mean) / (std + std_guard); "all_features": one mean
      and std over all bins and real frames; "global": fixed vectors, NeMo's {fixed_mean,
      fixed_std}, fitted with `fit_global_stats`; "none": NeMo's None).
    - std_guard: NeMo's module constant `CONSTANT` (1e-5), not a NeMo config field.
    - pad_to, pad_value: `pad_to` (16; 0 in the recipe): pad T to a multiple (0 = don't);
      `pad_value` (0): the value of every padded frame, written after normalisation.
    - count_final_frame: no NeMo field; it depends on the NeMo version. True: T = 1 + N // hop,
      every frame torch.stft(center=True) computes (older NeMo, librosa). False: T = N // hop,
      as recent NeMo (2.x) `FilterbankFeatures.get_seq_len` (no "+ 1"); the last frame is then
      zeroed as padding. Ignored under sherpa_compat.
    - nemo_compat: no NeMo field. True reproduces NeMo 2.x where it differs on purpose from the
      above: with exact_pad and pre-emphasis, the last (n_fft - hop_length) // 2 real samples of
      each utterance are zeroed (its mask runs after the padding). Set by `squeezer import-nemo`.
    - sherpa_compat: no NeMo field. True computes the features sherpa-onnx computes for a NeMo
      CTC model (kaldi-native-fbank), so that a model trained with them transcribes in
      sherpa-onnx exactly as in squeezer. Kaldi's framing (snip_edges=false): T = (N + hop / 2)
      // hop frames, frame t centred on sample t * hop + hop / 2, the signal mirrored at both
      ends; pre-emphasis within each frame (its first sample x[0] - a x[0]); a periodic Hann
      window; per_feature std over N frames, not N - 1. sherpa-onnx fixes the other choices,
      so they must be its values (checked): see `sherpa_features`.

    Not supported (NeMo's defaults only): frame_splicing=1, nb_augmentation_prob=0.
    """

    sample_rate: int = SAMPLE_RATE
    n_mels: int = N_MELS
    win_length: int = WIN_LENGTH
    hop_length: int = HOP_LENGTH
    n_fft: int = N_FFT
    window: WindowKind = "hann"
    preemphasis: float | None = 0.97
    dither: float = 0.0
    exact_pad: bool = False
    mag_power: float = 2.0
    f_min: float = 0.0
    f_max: float | None = None
    mel_norm: MelNorm = "slaney"
    log: bool = True
    log_guard_type: LogGuardType = "add"
    log_guard_value: float | Literal["tiny", "eps"] = LOG_GUARD
    normalize: Normalization = "per_feature"
    std_guard: float = STD_GUARD
    count_final_frame: bool = True
    pad_to: int = 0
    pad_value: float = 0.0
    nemo_compat: bool = False
    sherpa_compat: bool = False

    def __post_init__(self) -> None:
        for name, kind in _LITERAL_FIELDS.items():
            value = getattr(self, name)
            if value not in get_args(kind):
                raise ValueError(f"{name}={value!r} is not one of {', '.join(get_args(kind))}")
        self._check_frames()
        self._check_values()
        if self.sherpa_compat:
            self._check_sherpa()

    def _check_sherpa(self) -> None:
        """sherpa-onnx's NeMo CTC frontend has no knobs for these: each must be its value."""
        if self.normalize not in ("per_feature", "none"):
            raise ValueError(
                f"sherpa_compat=True: normalize={self.normalize!r}, sherpa-onnx offers "
                "'per_feature' or 'none'"
            )
        for name, value in _sherpa_settings(self.sample_rate).items():
            if getattr(self, name) != value:
                raise ValueError(
                    f"sherpa_compat=True: {name}={getattr(self, name)!r}, sherpa-onnx uses "
                    f"{value!r}"
                )

    def _check_frames(self) -> None:
        for name in ("sample_rate", "n_mels", "win_length", "hop_length", "n_fft"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        # Upper bounds far above any real frontend, so a damaged config.yaml is an error and
        # not gigabytes of FFT buffers and filterbanks (n_fft 2**30 would be 4 GiB per frame).
        for name, most in (("sample_rate", 384_000), ("n_fft", 1 << 16), ("n_mels", 1024),
                           ("hop_length", 1 << 16), ("pad_to", 1 << 16)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, int) and value > most:
                raise ValueError(f"{name}={value!r} exceeds {most}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} must not exceed n_fft={self.n_fft}")
        if self.exact_pad and self.hop_length % 2:
            raise ValueError(f"hop_length={self.hop_length} must be even with exact_pad (NeMo)")
        if not isinstance(self.pad_to, int) or self.pad_to < 0:
            raise ValueError(f"pad_to={self.pad_to!r} must be a non-negative integer")

    def _check_values(self) -> None:
        if self.preemphasis is not None and not 0.0 <= self.preemphasis < 1.0:
            raise ValueError(f"preemphasis={self.preemphasis!r} must be in [0, 1) or None")
        nyquist = self.sample_rate / 2
        if not 0.0 <= self.f_min < self.max_frequency <= nyquist:
            raise ValueError(
                f"f_min={self.f_min!r}, f_max={self.f_max!r} must satisfy "
                f"0 <= f_min < f_max <= {nyquist} (half the sample rate)"
            )
        for name in ("dither", "std_guard"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")
        if self.mag_power <= 0:
            raise ValueError(f"mag_power={self.mag_power!r} must be positive")
        guard = self.log_guard_value
        if guard not in ("tiny", "eps") and (isinstance(guard, str) or not guard > 0):
            raise ValueError(f"log_guard_value={guard!r} must be positive, 'tiny' or 'eps'")

    @property
    def max_frequency(self) -> float:
        """f_max, or half the sample rate when unset (Hz)."""
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    def replace(self, **changes: Any) -> FeatureConfig:
        """A copy with `changes` applied (validated like any new config)."""
        return dataclasses.replace(self, **changes)


def _sherpa_settings(sample_rate: int) -> dict[str, Any]:
    """What sherpa-onnx's NeMo CTC frontend fixes, at `sample_rate` (see `sherpa_features`)."""
    win_length = round(0.025 * sample_rate)
    return dict(
        sample_rate=sample_rate, win_length=win_length, hop_length=round(0.010 * sample_rate),
        n_fft=1 << (win_length - 1).bit_length(), window="hann", preemphasis=0.97,
        exact_pad=False, mag_power=2.0, f_min=0.0, f_max=None, mel_norm="slaney", log=True,
        log_guard_type="add", log_guard_value=LOG_GUARD, std_guard=STD_GUARD, nemo_compat=False,
    )  # fmt: skip


def sherpa_features(sample_rate: int = SAMPLE_RATE, **changes: Any) -> FeatureConfig:
    """The frontend sherpa-onnx runs for a NeMo CTC model (`OfflineRecognizer.from_nemo_ctc`):
    25 ms Hann frames every 10 ms, FFT of the next power of two, pre-emphasis 0.97, librosa's
    slaney mel filters from 0 Hz to Nyquist, log(mel + 2**-24) as NeMo (sherpa-onnx 2.0; older
    releases floored it at float32's eps), per_feature normalisation. `changes` may set what
    the recognizer takes from the model: n_mels (its `feature_dim`), normalize ('per_feature'
    or 'none'), and the training-only dither and padding."""
    return FeatureConfig(**{**_sherpa_settings(sample_rate), **changes}, sherpa_compat=True)


_LITERAL_FIELDS = {
    "window": WindowKind,
    "mel_norm": MelNorm,
    "log_guard_type": LogGuardType,
    "normalize": Normalization,
}


_MEL_HZ_PER_UNIT = 200.0 / 3  # Hz per mel in the linear part
_MEL_AT_1KHZ = 15.0  # 1000 Hz / (200 / 3)
_MEL_LOG_STEP = math.log(6.4) / 27.0  # log-spaced part: 27 mels per factor 6.4


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    linear = hz / _MEL_HZ_PER_UNIT
    logarithmic = _MEL_AT_1KHZ + torch.log(hz.clamp(min=1e-10) / 1000.0) / _MEL_LOG_STEP
    return torch.where(hz >= 1000.0, logarithmic, linear)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    linear = mel * _MEL_HZ_PER_UNIT
    logarithmic = 1000.0 * torch.exp(_MEL_LOG_STEP * (mel - _MEL_AT_1KHZ))
    return torch.where(mel >= _MEL_AT_1KHZ, logarithmic, linear)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    norm: MelNorm = "slaney",
) -> torch.Tensor:
    """Triangular mel filters (n_mels, n_fft // 2 + 1) float32, as librosa.filters.mel(htk=False).

    norm="slaney" scales each triangle to unit area in Hz, so wide high bands don't dominate.
    Built in float64 and rounded once, like librosa.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges_mel = torch.linspace(
        _hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
        _hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
        n_mels + 2,
        dtype=torch.float64,
    )
    edges = _mel_to_hz(edges_mel)  # (n_mels + 2,) Hz: left, centre, right of each triangle
    widths = edges.diff()  # (n_mels + 1,)
    offsets = edges[:, None] - fft_hz[None, :]  # (n_mels + 2, K)
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = torch.minimum(rising, falling).clamp(min=0.0)  # (n_mels, K)
    if norm == "slaney":
        weights = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.to(torch.float32)


@dataclass(frozen=True)
class FeatureStats:
    """Per-bin statistics of log-mel features: mean (F,), std (F,) (std_guard included)."""

    mean: torch.Tensor
    std: torch.Tensor


def fit_global_stats(
    features: torch.Tensor, lengths: torch.Tensor, std_guard: float = STD_GUARD
) -> FeatureStats:
    """Mean and unbiased std (+ std_guard) of each bin over the real frames of a batch.

    Args:
        features: (B, T, F) un-normalised features (normalize="none", or "global" before
            any stats are set: its buffers start as mean 0, std 1).
        lengths: (B,) real frames per utterance.
    """
    valid = ~lengths_to_padding_mask(lengths.to(features.device), features.shape[1])
    frames = features[valid].to(torch.float64)  # (sum(lengths), F)
    if frames.shape[0] < 2:
        raise ValueError(f"fit_global_stats needs at least 2 real frames, got {frames.shape[0]}")
    mean, std = frames.mean(dim=0), frames.std(dim=0) + std_guard
    return FeatureStats(mean.to(features.dtype), std.to(features.dtype))


class LogMelFrontend(nn.Module):
    """Waveforms -> log-mel features, batched and padding-aware (the paper's 80-bin input).

    Args:
        config: the frontend's choices (see `FeatureConfig` for their NeMo names).
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FeatureConfig()
        # NeMo's windows are symmetric; kaldi-native-fbank's Hann is periodic.
        window = _WINDOWS[config.window](config.win_length, periodic=config.sherpa_compat)
        filters = mel_filterbank(
            config.sample_rate,
            config.n_fft,
            config.n_mels,
            config.f_min,
            config.f_max,
            config.mel_norm,
        )
        # Both follow from the config, so they stay out of the state dict.
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_basis", filters.T.contiguous(), persistent=False)  # (K, F)
        if config.normalize == "global":  # identity until set_global_stats
            self.register_buffer("global_mean", torch.zeros(config.n_mels))
            self.register_buffer("global_std", torch.ones(config.n_mels))

    @property
    def _stft_padding(self) -> int:
        """Zeros each side of the signal before framing (torch.stft's centre pad or NeMo's)."""
        if self.config.exact_pad:
            return (self.config.n_fft - self.config.hop_length) // 2
        return self.config.n_fft // 2

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Real frames (B,) int64 for `lengths` (B,) samples; 0 samples give 0 frames."""
        cfg = self.config
        if cfg.sherpa_compat:  # Kaldi with snip_edges=false: N / hop frames, rounded
            frames = torch.div(lengths.long() + cfg.hop_length // 2, cfg.hop_length,
                               rounding_mode="floor")  # fmt: skip
            return torch.where(lengths > 0, frames, torch.zeros_like(frames))
        padded = lengths.long() + 2 * self._stft_padding - cfg.n_fft
        frames = torch.div(padded, cfg.hop_length, rounding_mode="floor") + 1
        if not cfg.count_final_frame:
            frames = frames - 1
        return torch.where(lengths > 0, frames.clamp(min=0), torch.zeros_like(frames))

    def set_global_stats(self, stats: FeatureStats) -> None:
        """Store fitted per-bin statistics (normalize="global" only)."""
        if self.config.normalize != "global":
            raise ValueError(f"normalize={self.config.normalize!r}: global stats need 'global'")
        for name, value in (("mean", stats.mean), ("std", stats.std)):
            if value.shape != (self.config.n_mels,):
                raise ValueError(
                    f"stats.{name} shape {tuple(value.shape)} != ({self.config.n_mels},)"
                )
        if not bool((stats.std > 0).all()):
            raise ValueError("stats.std must be positive in every bin")
        self.global_mean.copy_(stats.mean)
        self.global_std.copy_(stats.std)

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """waveforms (B, N) float, lengths (B,) int samples -> features (B, T, F) float32,
        frame_lengths (B,) int64 (`output_lengths`). T: the STFT's frames for N samples
        (1 + N // hop_length by default), rounded up to a multiple of pad_to."""
        self._check_inputs(waveforms, lengths)
        lengths = lengths.to(waveforms.device)
        frame_lengths = self.output_lengths(lengths)
        # Full precision whatever the caller's autocast: log-mels of fp16 power spectra overflow.
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            samples = self._prepare(waveforms.float(), lengths)
            mel = self._power_spectrum(samples, lengths) @ self.mel_basis  # (B, T, K) @ (K, F)
            features = self._normalize(self._log(mel), frame_lengths)
        padding = lengths_to_padding_mask(frame_lengths, features.shape[1])
        features = features.masked_fill(padding.unsqueeze(-1), self.config.pad_value)
        return self._pad_to_multiple(features), frame_lengths

    def _check_inputs(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> None:
        if waveforms.ndim != 2 or lengths.shape != waveforms.shape[:1]:
            raise ValueError(
                f"expected waveforms (B, N) and lengths (B,), got {tuple(waveforms.shape)} "
                f"and {tuple(lengths.shape)}"
            )
        if lengths.is_floating_point():
            raise ValueError(f"lengths must be integer sample counts, got {lengths.dtype}")
        if lengths.numel() and not bool(((lengths >= 0) & (lengths <= waveforms.shape[1])).all()):
            raise ValueError(f"lengths must lie in [0, {waveforms.shape[1]}] samples")
        if self.config.exact_pad and waveforms.shape[1] < self.config.hop_length:
            raise ValueError(
                f"exact_pad needs at least hop_length={self.config.hop_length} samples"
            )

    def _prepare(self, samples: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Dither and pre-emphasis on the real samples; zeros after each utterance's end."""
        cfg = self.config
        padding = lengths_to_padding_mask(lengths, samples.shape[1])  # (B, N)
        samples = samples.masked_fill(padding, 0.0)
        if self.training and cfg.dither > 0:
            samples = samples + cfg.dither * torch.randn_like(samples).masked_fill(padding, 0.0)
        if cfg.preemphasis is not None and not cfg.sherpa_compat:  # Kaldi's: per frame
            emphasised = samples[:, 1:] - cfg.preemphasis * samples[:, :-1]
            if cfg.nemo_compat and cfg.exact_pad:
                # NeMo masks samples at or past N in padded coordinates: the last pad's worth.
                padding = lengths_to_padding_mask(lengths - self._stft_padding, samples.shape[1])
            # y[0] = x[0], as NeMo. Re-zero the padding (NeMo does too): its first sample would
            # hold -a * x[N - 1], which the same utterance alone never produces.
            samples = torch.cat([samples[:, :1], emphasised], dim=1).masked_fill(padding, 0.0)
        return samples

    def _power_spectrum(self, samples: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) -> |STFT|**mag_power (B, T, n_fft // 2 + 1)."""
        cfg = self.config
        if cfg.sherpa_compat:
            return self._kaldi_power_spectrum(samples, lengths)
        if cfg.exact_pad:
            samples = F.pad(samples, (self._stft_padding, self._stft_padding))
        spectrum = torch.stft(
            samples,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window,
            center=not cfg.exact_pad,
            pad_mode="constant",  # zeros, as NeMo: reflection would see into the batch padding
            return_complex=True,
        )  # (B, K, T)
        power = torch.view_as_real(spectrum).pow(2).sum(-1)  # |X|^2 (NeMo: sqrt, then pow)
        if cfg.mag_power != 2.0:
            power = power.pow(cfg.mag_power / 2)
        return power.transpose(1, 2)

    def _kaldi_power_spectrum(self, samples: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) -> power spectrum (B, T, n_fft // 2 + 1) of kaldi-native-fbank's frames.

        Frame t holds samples t * hop + hop // 2 - win // 2 onwards, each utterance mirrored
        at its own ends (Kaldi: s < 0 -> -s - 1, s >= N -> 2N - 1 - s, repeated), so a padded
        batch row sees what the utterance alone sees. Pre-emphasis runs within the frame.
        """
        cfg = self.config
        batch, width = samples.shape
        frames = (width + cfg.hop_length // 2) // cfg.hop_length
        if frames == 0:  # MKL's FFT refuses an empty batch
            return samples.new_zeros(batch, 0, cfg.n_fft // 2 + 1)
        first = torch.arange(frames, device=samples.device) * cfg.hop_length
        first = first + cfg.hop_length // 2 - cfg.win_length // 2
        index = first[:, None] + torch.arange(cfg.win_length, device=samples.device)  # (T, W)
        size = lengths.clamp(min=1).view(batch, 1, 1)
        folded = torch.remainder(index, 2 * size)  # (B, T, W): mirroring has period 2N
        index = torch.where(folded >= size, 2 * size - 1 - folded, folded)
        framed = samples.gather(1, index.view(batch, -1)).view(batch, frames, cfg.win_length)
        if cfg.preemphasis is not None:
            a = cfg.preemphasis
            framed = torch.cat(
                [framed[..., :1] * (1 - a), framed[..., 1:] - a * framed[..., :-1]], -1
            )
        spectrum = torch.fft.rfft(framed * self.window, n=cfg.n_fft)  # (B, T, K)
        return torch.view_as_real(spectrum).pow(2).sum(-1)

    def _log(self, mel: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if not cfg.log:
            return mel
        guard = cfg.log_guard_value
        if isinstance(guard, str):
            guard = getattr(torch.finfo(mel.dtype), guard)
        if cfg.log_guard_type == "add":
            return torch.log(mel + guard)
        return torch.log(mel.clamp(min=guard))

    def _normalize(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> normalised over each utterance's real frames only."""
        cfg = self.config
        if cfg.normalize == "none":
            return features
        if cfg.normalize == "global":
            return (features - self.global_mean) / self.global_std
        valid = ~lengths_to_padding_mask(frame_lengths, features.shape[1])
        valid = valid.unsqueeze(-1).to(features.dtype)  # (B, T, 1)
        count = valid.sum(dim=1, keepdim=True)  # (B, 1, 1)
        dims: tuple[int, ...] = (1,)
        if cfg.normalize == "all_features":
            dims, count = (1, 2), count * features.shape[-1]
        mean = (features * valid).sum(dims, keepdim=True) / count.clamp(min=1)
        squares = ((features - mean) * valid).pow(2).sum(dims, keepdim=True)
        # Unbiased, as NeMo; one frame gives std 0 and features 0, as NeMo's NaN -> 0 does.
        # sherpa-onnx divides by N.
        std = (squares / (count - (0 if cfg.sherpa_compat else 1)).clamp(min=1)).sqrt()
        return (features - mean) / (std + cfg.std_guard)

    def _pad_to_multiple(self, features: torch.Tensor) -> torch.Tensor:
        pad_to = self.config.pad_to
        extra = -features.shape[1] % pad_to if pad_to else 0
        if extra == 0:
            return features
        return F.pad(features, (0, 0, 0, extra), value=self.config.pad_value)
