"""One timing process of `make bench-nemo`: NeMo 2.7.3's encoder or squeezer's, from one .nemo.

Runs in NeMo's throwaway venv (`--implementation nemo`, and `--make-model`) or in squeezer's
venv (`--implementation squeezer`); it imports only the side it times. Prints one JSON line.

Protocol: a batch of 8 utterances of 10 s (80-dim features, 1000 frames each), fp32 on CPU,
`torch.set_num_threads(threads)`; a warm-up run, then the best of `repeats`: an eval-mode
forward under `torch.no_grad`, and a train-mode forward + backward of the mean square of the
encoder output.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

BATCH, FEATURES, FRAMES, FRAME_S = 8, 80, 1000, 0.01
SEED = 0

# The published Squeezeformer-XS (NeMo's squeezeformer_ctc_bpe.yaml table): d_model 144,
# 16 layers, 4 heads, reduction before layer 7, recovery (default) before the last layer.
XS_ENCODER = dict(
    _target_="nemo.collections.asr.modules.SqueezeformerEncoder", feat_in=FEATURES,
    feat_out=-1, n_layers=16, d_model=144, adaptive_scale=True, time_reduce_idx=7,
    time_recovery_idx=None, subsampling="dw_striding", subsampling_factor=4,
    subsampling_conv_channels=-1, ff_expansion_factor=4, self_attention_model="rel_pos",
    n_heads=4, att_context_size=[-1, -1], xscaling=True, untie_biases=True,
    pos_emb_max_len=5000, conv_kernel_size=31, conv_norm_type="batch_norm", dropout=0.1,
    dropout_emb=0.0, dropout_att=0.1,
)  # fmt: skip
LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def make_model(path: Path) -> None:
    """A random-weight Squeezeformer-XS character CTC model, saved by NeMo as `path`."""
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    preprocessor = dict(
        _target_="nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        sample_rate=16000, normalize="per_feature", window_size=0.025, window_stride=0.01,
        window="hann", features=FEATURES, n_fft=512, log=True, frame_splicing=1,
        dither=0.00001, pad_to=0, pad_value=0.0,
    )  # fmt: skip
    decoder = dict(_target_="nemo.collections.asr.modules.ConvASRDecoder", feat_in=144,
                   num_classes=len(LABELS), vocabulary=LABELS)  # fmt: skip
    config = dict(sample_rate=16000, labels=LABELS, preprocessor=preprocessor,
                  encoder=XS_ENCODER, decoder=decoder)  # fmt: skip
    torch.manual_seed(SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    EncDecCTCModel(cfg=OmegaConf.create(config)).save_to(str(path))


def _encoder(implementation: str, path: Path) -> tuple[torch.nn.Module, Callable]:
    """The encoder module and a forward (features (B, F, T), lengths) -> output tensor."""
    if implementation == "nemo":
        from nemo.collections.asr.models import ASRModel

        encoder = ASRModel.restore_from(str(path), map_location="cpu").encoder
        return encoder, lambda x, lengths: encoder(audio_signal=x, length=lengths)[0]
    import squeezer

    encoder = squeezer.load_model(path).encoder
    return encoder, lambda x, lengths: encoder(x.transpose(1, 2), lengths).features


def _best(step: Callable[[], object], repeats: int, before: Callable[[], None]) -> float:
    before()
    step()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(implementation: str, path: Path, repeats: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    encoder, forward = _encoder(implementation, path)
    x = torch.randn(BATCH, FEATURES, FRAMES, generator=torch.Generator().manual_seed(SEED))
    lengths = torch.full((BATCH,), FRAMES, dtype=torch.int64)
    encoder.eval()
    with torch.no_grad():
        frames = forward(x, lengths).shape
        forward_s = _best(lambda: forward(x, lengths), repeats, lambda: None)
    encoder.train()

    def train_step() -> None:
        forward(x, lengths).pow(2).mean().backward()

    train_s = _best(train_step, repeats, lambda: encoder.zero_grad(set_to_none=True))
    audio_s = BATCH * FRAMES * FRAME_S
    return {
        "implementation": implementation,
        "params": sum(p.numel() for p in encoder.parameters()),
        "output_shape": list(frames),
        "forward_audio_s_per_s": audio_s / forward_s,
        "train_audio_s_per_s": audio_s / train_s,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-model", type=Path, help="write the XS .nemo here and exit")
    parser.add_argument("--implementation", choices=["nemo", "squeezer"])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.make_model:
        make_model(args.make_model)
        return
    result = measure(args.implementation, args.model, args.repeats, args.threads)
    print(json.dumps(result))  # the driver reads this last line


if __name__ == "__main__":
    main()
