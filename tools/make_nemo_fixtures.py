"""Make tests/fixtures/nemo with NeMo 2.7.3 itself: tiny .nemo CTC models and NeMo's outputs.

Runs inside a throwaway venv that has NeMo (tools/make_nemo_fixtures.sh builds one); it never
imports squeezer, and squeezer never imports NeMo. For each model it writes

- `NAME.nemo`: a random-weight model saved by NeMo's own `save_to`, with every norm scale and
  bias, adaptive-scale parameter (or buffer), attention bias and BatchNorm running statistic
  perturbed away from its initial value, so that a wrong or missing mapping cannot hide;
- `NAME.npz` (plain arrays, no pickle): NeMo's features, feature lengths, log-probabilities and
  output lengths for each utterance alone and for the padded batch, and its greedy texts.

The utterances are `audio/utt{0,1,2}.wav`: 16-bit PCM at 16 kHz of odd, different lengths,
a deterministic mix of chirps, tones and noise bursts over an always-on noise floor (no speech:
the weights are random). Nothing is written unless every fixture is well-conditioned: its
features and log-probs barely move when each sample moves by one float32 ulp, or when MKL takes
another code path (`check_conditioning`, `check_fft_paths`), so the tests hold on every CPU.

    /tmp/nemo-venv/bin/python tools/make_nemo_fixtures.py --out tests/fixtures/nemo
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal
import sentencepiece as spm
import soundfile as sf
import torch
from omegaconf import OmegaConf

SAMPLE_RATE = 16000
PREEMPHASIS = 0.97  # NeMo's default, used by every fixture's preprocessor
NOISE_FLOOR = 0.2  # std of the always-on noise floor, about the signal's own level
LENGTHS = (17123, 25417, 31999)  # samples: odd, different, not multiples of the hop
SEED = 1234
TEST_TOLERANCE = 1e-4  # tests/nemo/test_parity.py: features and log-probs agree within this
# The most an output may move under the checks below (check_conditioning, check_fft_paths).
FEATURE_LIMIT = TEST_TOLERANCE / 10
# Log-probs reach -60, where one float32 ulp is 3.8e-6: a move of a few ulps is float32's own
# floor, not the fixture's conditioning, so they get a quarter of the tolerance (4x margin).
LOG_PROB_LIMIT = TEST_TOLERANCE / 4
MKL_PATHS = ("COMPATIBLE", "AVX2", "AVX512")  # MKL code paths the fixtures must not depend on
CHARACTERS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "it's a long way to the top if you want to rock and roll",
    "don't count your chickens before they hatch",
    "a journey of a thousand miles begins with a single step",
    "we're going to need a bigger boat",
    "the rain in spain stays mainly in the plain",
    "all that glitters is not gold",
]


def noise_floor(rng: np.random.Generator, length: int) -> np.ndarray:
    """Always-on noise that is white after NeMo's 0.97 pre-emphasis: energy in every mel bin.

    Without it some frames of the chirps and tones have almost no energy below ~100 Hz; their
    log-mels are then set by float32 rounding in the FFT, and per-feature normalisation turns
    that rounding (which differs between MKL's code paths) into feature differences of 1e-3.
    De-emphasis, y[n] = x[n] + 0.97 y[n - 1], undoes the pre-emphasis filter's 30 dB cut at
    the lowest frequencies.
    """
    white = rng.normal(0, 1, length)
    shaped = scipy.signal.lfilter([1.0], [1.0, -PREEMPHASIS], white)
    return shaped / shaped.std()


def make_audio(directory: Path) -> list[Path]:
    """Three 16-bit WAVs of chirps, tones and noise bursts over a noise floor; their paths."""
    rng = np.random.default_rng(SEED)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, length in enumerate(LENGTHS):
        t = np.arange(length) / SAMPLE_RATE
        f0 = 150 + 60 * index
        chirp = np.sin(2 * np.pi * (f0 * t + 400 * t**2))
        tone = 0.5 * np.sin(2 * np.pi * (900 + 300 * index) * t)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (2.5 + index) * t) ** 2
        noise = rng.normal(0, 0.3, length) * (np.sin(2 * np.pi * 3.7 * t) > 0.3)
        floor = NOISE_FLOOR * noise_floor(rng, length)
        signal = 0.3 * envelope * (chirp + tone) + 0.1 * noise + floor
        pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
        path = directory / f"utt{index}.wav"
        sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def train_sentencepiece(directory: Path, vocab_size: int) -> Path:
    """A small SentencePiece model in the layout NeMo's tokenizer dir expects."""
    directory.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 4),
        model_prefix=str(directory / "tokenizer"),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        normalization_rule_name="identity",
        bos_id=-1,
        eos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    vocab = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return directory


def preprocessor(**changes) -> dict:
    base = dict(
        _target_="nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        sample_rate=SAMPLE_RATE,
        normalize="per_feature",
        window_size=0.025,
        window_stride=0.01,
        window="hann",
        features=80,
        n_fft=512,
        log=True,
        frame_splicing=1,
        dither=0.00001,
        pad_to=0,
        pad_value=0.0,
    )
    return {**base, **changes}


SQUEEZEFORMER = "nemo.collections.asr.modules.SqueezeformerEncoder"
CONFORMER = "nemo.collections.asr.modules.ConformerEncoder"

# name -> (tokenizer kind, preprocessor, encoder). Each varies the keys the importer maps.
MODELS = {
    "squeezeformer_unet_bpe": (
        "bpe",
        preprocessor(),
        dict(_target_=SQUEEZEFORMER, n_layers=4, d_model=48, n_heads=4, adaptive_scale=True,
             time_reduce_idx=1, time_recovery_idx=3, subsampling="dw_striding",
             subsampling_factor=4, subsampling_conv_channels=-1, ff_expansion_factor=4,
             self_attention_model="rel_pos", att_context_size=[-1, -1], xscaling=True,
             untie_biases=True, pos_emb_max_len=5000, conv_kernel_size=9,
             conv_norm_type="batch_norm", dropout=0.1, dropout_emb=0.0, dropout_att=0.1),
    ),
    "conformer_striding_bpe": (
        "bpe",
        preprocessor(features=64, window_size=0.02, n_fft=None, pad_to=16),
        dict(_target_=CONFORMER, n_layers=2, d_model=32, n_heads=4, subsampling="striding",
             subsampling_factor=4, subsampling_conv_channels=-1, causal_downsampling=False,
             ff_expansion_factor=4, self_attention_model="rel_pos", att_context_size=[-1, -1],
             att_context_style="regular", xscaling=True, untie_biases=False,
             pos_emb_max_len=5000, conv_kernel_size=7, conv_norm_type="batch_norm",
             conv_context_size=None, dropout=0.1, dropout_pre_encoder=0.1, dropout_emb=0.0,
             dropout_att=0.1, stochastic_depth_drop_prob=0.0),
    ),
    "fastconformer_dw8_bpe": (
        "bpe",
        preprocessor(normalize="all_features", exact_pad=True),
        dict(_target_=CONFORMER, n_layers=2, d_model=40, n_heads=4, subsampling="dw_striding",
             subsampling_factor=8, subsampling_conv_channels=16, causal_downsampling=False,
             ff_expansion_factor=4, self_attention_model="rel_pos", att_context_size=[-1, -1],
             att_context_style="regular", xscaling=True, untie_biases=True,
             pos_emb_max_len=5000, conv_kernel_size=9, conv_norm_type="batch_norm",
             conv_context_size=None, dropout=0.1, dropout_pre_encoder=0.1, dropout_emb=0.0,
             dropout_att=0.1),
    ),
    "squeezeformer_char": (
        "char",
        preprocessor(features=64, log_zero_guard_type="clamp", mag_power=1.0),
        dict(_target_=SQUEEZEFORMER, n_layers=3, d_model=36, n_heads=2, adaptive_scale=False,
             time_reduce_idx=1, time_recovery_idx=None, subsampling="dw_striding",
             subsampling_factor=4, subsampling_conv_channels=24, ff_expansion_factor=2,
             self_attention_model="rel_pos", xscaling=False, untie_biases=True,
             conv_kernel_size=5, conv_norm_type="batch_norm", dropout=0.1, dropout_att=0.1),
    ),
}  # fmt: skip


def build_model(kind: str, pre: dict, encoder: dict, tokenizer_dir: Path):
    """A NeMo CTC model (BPE or characters) from these module configs."""
    from nemo.collections.asr.models import EncDecCTCModel, EncDecCTCModelBPE

    encoder = {**encoder, "feat_in": pre["features"]}
    decoder = dict(_target_="nemo.collections.asr.modules.ConvASRDecoder",
                   feat_in=encoder["d_model"], num_classes=-1, vocabulary=[])  # fmt: skip
    model = dict(
        sample_rate=SAMPLE_RATE,
        preprocessor=pre,
        encoder=encoder,
        decoder=decoder,
        validation_ds=dict(
            manifest_filepath=None,
            sample_rate=SAMPLE_RATE,
            batch_size=1,
            use_start_end_token=False,
            shuffle=False,
            num_workers=0,
        ),
    )  # transcribe() reads it
    if kind == "bpe":
        model["tokenizer"] = dict(dir=str(tokenizer_dir), type="bpe")
        return EncDecCTCModelBPE(cfg=OmegaConf.create(model))
    model["labels"] = CHARACTERS
    decoder.update(num_classes=len(CHARACTERS), vocabulary=CHARACTERS)
    return EncDecCTCModel(cfg=OmegaConf.create(model))


@torch.no_grad()
def perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Move every norm, scale, attention bias and BatchNorm statistic off its initial value."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            channels = module.num_features
            module.running_mean.copy_(0.3 * torch.randn(channels, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(channels, generator=generator))
            module.num_batches_tracked.fill_(7)
    for name, tensor in list(model.state_dict(keep_vars=True).items()):
        leaf = name.rsplit(".", 1)[-1]
        if "preprocessor" in name or not tensor.is_floating_point():
            continue
        is_norm = ("norm" in name or "pre_ln" in name) and leaf in ("weight", "bias")
        is_scale = name.split(".")[-2].endswith("_scale") and leaf in ("scale", "bias")
        is_bn = "batch_norm" in name and leaf in ("weight", "bias")
        if is_norm or is_scale or is_bn:
            center = 1.0 if leaf in ("weight", "scale") else 0.0
            tensor.copy_(center + 0.2 * torch.randn(tensor.shape, generator=generator))
        elif leaf in ("pos_bias_u", "pos_bias_v"):
            tensor.copy_(0.2 * torch.randn(tensor.shape, generator=generator))
        elif name == "decoder.decoder_layers.0.weight":
            tensor.mul_(4.0)  # sharper outputs: greedy texts of many different tokens
        elif name.startswith("encoder.pre_encode.conv.") and leaf == "weight":
            tensor.mul_(3.0)  # default-initialised stacks shrink the signal to their biases


@torch.no_grad()
def nemo_outputs(model, waveforms: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Features and log-probs of each utterance alone and of the padded batch."""
    out: dict[str, np.ndarray] = {}

    def run(batch: torch.Tensor, lengths: torch.Tensor):
        features, feature_lengths = model.preprocessor(input_signal=batch, length=lengths)
        encoded, encoded_lengths = model.encoder(audio_signal=features, length=feature_lengths)
        log_probs = model.decoder(encoder_output=encoded)
        return features, feature_lengths, log_probs, encoded_lengths

    for index, wave in enumerate(waveforms):
        f, fl, lp, ol = run(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
        out[f"alone{index}_features"] = f[0].T.numpy()  # (T, F)
        out[f"alone{index}_feature_length"] = fl.numpy()
        out[f"alone{index}_log_probs"] = lp[0].numpy()  # (T', V + 1), blank last
        out[f"alone{index}_length"] = ol.numpy()
    lengths = torch.tensor([w.size for w in waveforms])
    batch = torch.zeros(len(waveforms), int(lengths.max()))
    for index, wave in enumerate(waveforms):
        batch[index, : wave.size] = torch.from_numpy(wave)
    f, fl, lp, ol = run(batch, lengths)
    out["batch_features"] = f.transpose(1, 2).numpy()  # (B, T, F)
    out["batch_feature_lengths"] = fl.numpy()
    out["batch_log_probs"] = lp.numpy()  # (B, T', V + 1), blank last
    out["batch_lengths"] = ol.numpy()
    return out


def greedy_texts(model, log_probs: np.ndarray, lengths: np.ndarray) -> list[str]:
    hypotheses = model.decoding.ctc_decoder_predictions_tensor(
        torch.from_numpy(log_probs), decoder_lengths=torch.from_numpy(lengths)
    )
    return [h.text for h in hypotheses]


def largest_moves(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """How far each array moved between two `nemo_outputs`, compared as the tests compare them.

    Features are compared whole (padding included); log-probs on real frames only.
    """
    compared = [key for key in ours if key.endswith("_features")
                or (key.startswith("alone") and key.endswith("_log_probs"))]  # fmt: skip
    moves = {key: float(np.abs(ours[key] - theirs[key]).max()) for key in compared}
    for index, frames in enumerate(ours["batch_lengths"].tolist()):
        ours_real, theirs_real = (a["batch_log_probs"][index, :frames] for a in (ours, theirs))
        moves[f"batch_log_probs[{index}]"] = float(np.abs(ours_real - theirs_real).max())
    return moves


def check_moves(name: str, moves: dict[str, float], cause: str) -> str:
    """Stop (writing nothing) if any array moved past its limit under `cause`; else a summary."""
    for key, move in moves.items():
        limit = LOG_PROB_LIMIT if "log_probs" in key else FEATURE_LIMIT
        if move > limit:
            raise SystemExit(
                f"{name}: {key} moves by {move:.2e} {cause} (limit {limit:.1e}); the fixture is "
                "ill-conditioned: its outputs would differ between CPUs"
            )
    features = max(move for key, move in moves.items() if "features" in key)
    log_probs = max(move for key, move in moves.items() if "log_probs" in key)
    return f"features move by {features:.1e}, log-probs by {log_probs:.1e} {cause}"


def one_ulp_apart(waveform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every sample moved by one float32 unit in the last place, up or down at random."""
    direction = np.where(rng.random(waveform.size) < 0.5, np.inf, -np.inf).astype(np.float32)
    return np.nextafter(waveform, direction)


def check_conditioning(name: str, model, waveforms: list[np.ndarray], arrays: dict) -> str:
    """Refuse a fixture whose outputs move when the input moves at float32 rounding level.

    MKL's FFT code paths differ by a few float32 roundings of each frame's spectrum; moving
    every input sample by one ulp is a perturbation of the same size. Calibration: the old
    chirp-and-tone audio without a noise floor moved `squeezeformer_char`'s features by 4.2e-3
    here, and MKL_CBWR=AVX512 against COMPATIBLE moved them by 3.5e-3 on an Intel Xeon.
    """
    rng = np.random.default_rng(SEED + 1)
    worst: dict[str, float] = {}
    for _ in range(3):
        nudged = [one_ulp_apart(wave, rng) for wave in waveforms]
        for key, move in largest_moves(nemo_outputs(model, nudged), arrays).items():
            worst[key] = max(worst.get(key, 0.0), move)
    return check_moves(name, worst, "when every audio sample moves by one float32 ulp")


def make_fixture(name: str, out: Path, paths: list[Path], tokenizer_dir: Path) -> None:
    """Build, run and save one model; refuses an ill-conditioned fixture."""
    kind, pre, encoder = MODELS[name]
    torch.manual_seed(SEED)
    model = build_model(kind, copy.deepcopy(pre), copy.deepcopy(encoder), tokenizer_dir)
    perturb(model, torch.Generator().manual_seed(SEED))
    model.eval()
    waveforms = read_waveforms(paths)
    arrays = nemo_outputs(model, waveforms)
    conditioning = check_conditioning(name, model, waveforms, arrays)
    texts = greedy_texts(model, arrays["batch_log_probs"], arrays["batch_lengths"])
    transcribed = model.transcribe([str(p) for p in paths], batch_size=1, verbose=False)
    transcribed = [h.text if hasattr(h, "text") else h for h in transcribed]
    if transcribed != texts:
        raise RuntimeError(f"{name}: NeMo's transcribe {transcribed} != its decoding {texts}")
    arrays["texts"] = np.array(texts, dtype=np.str_)
    np.savez_compressed(out / f"{name}.npz", **arrays)
    model.save_to(str(out / f"{name}.nemo"))
    logging.info("%s: %s; %s", name, texts, conditioning)


def read_waveforms(paths: list[Path]) -> list[np.ndarray]:
    return [sf.read(path, dtype="float32")[0] for path in paths]


def replay(staging: Path, names: list[str], save: Path) -> None:
    """Restore each staged NAME.nemo and save its outputs on the staged audio to save/NAME.npz."""
    from nemo.collections.asr.models import ASRModel

    waveforms = read_waveforms(sorted((staging / "audio").glob("utt*.wav")))
    save.mkdir(parents=True, exist_ok=True)
    for name in names:
        model = ASRModel.restore_from(str(staging / f"{name}.nemo"), map_location="cpu").eval()
        np.savez(save / f"{name}.npz", **nemo_outputs(model, waveforms))


def check_fft_paths(staging: Path, names: list[str]) -> None:
    """Refuse fixtures whose outputs move when MKL takes another code path (MKL_CBWR).

    Each path runs in a fresh process because MKL reads MKL_CBWR once, when it loads. On CPUs
    whose MKL ignores a setting (non-Intel ones may keep the generic path), that run agrees
    trivially and `check_conditioning` is what catches an ill-conditioned fixture.
    """
    for path in MKL_PATHS:
        save = staging / f"mkl-{path}"
        env = {**os.environ, "MKL_CBWR": path}
        command = [sys.executable, __file__, "--replay", str(staging), "--save", str(save),
                   "--only", *names]  # fmt: skip
        subprocess.run(command, env=env, check=True)
        for name in names:
            with np.load(staging / f"{name}.npz") as ours, np.load(save / f"{name}.npz") as theirs:
                moves = largest_moves(dict(ours), dict(theirs))
            summary = check_moves(name, moves, f"under MKL_CBWR={path}")
            logging.info("%s: %s", name, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/nemo"))
    parser.add_argument("--only", nargs="*", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)  # check_fft_paths' child
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    if args.replay:
        replay(args.replay, args.only, args.save)
        return
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch) / "fixtures"
        paths = make_audio(staging / "audio")
        tokenizer_dir = train_sentencepiece(Path(scratch) / "tokenizer", vocab_size=40)
        for name in args.only:
            make_fixture(name, staging, paths, tokenizer_dir)
        check_fft_paths(staging, args.only)
        total = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) - sum(
            p.stat().st_size for p in staging.glob("mkl-*/*")
        )
        if total > 5 * 2**20:
            raise SystemExit(f"fixtures are {total / 2**20:.1f} MB, over the 5 MB budget")
        args.out.mkdir(parents=True, exist_ok=True)
        for path in [*paths, *(staging / f"{name}.{ext}" for name in args.only
                               for ext in ("npz", "nemo"))]:  # fmt: skip
            target = args.out / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    logging.info("wrote %s (%.2f MB)", args.out, total / 2**20)


if __name__ == "__main__":
    main()
