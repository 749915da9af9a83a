"""bf16 autocast, the GPU recipes' precision, run on CPU: the model, and training end to end.

CPU autocast runs the same code as CUDA autocast (only the kernels differ), so `make
demo-gpu`'s recipes, shrunk to a tiny width and a few steps, train, checkpoint, resume,
average and evaluate here in bf16 exactly as they would on a GPU.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from squeezer.config import EncoderConfig
from squeezer.data.manifests import load_cuts
from squeezer.evaluate import evaluate
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.nn.batchnorm import MaskedBatchNorm
from squeezer.nn.heads import masked_mean
from squeezer.training import train
from squeezer.training.checkpoints import latest_checkpoint, load_checkpoint
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import load_recipe, packaged_recipes
from tests.conftest import first_utterances, shrink

GPU_RECIPES = sorted(p for n, p in packaged_recipes().items() if n.startswith("demo/gpu-"))
PRESETS = ["squeezeformer-xs", "conformer-s"]


def _twins(preset: str) -> tuple[AsrModel, AsrModel]:
    """A tiny model in train mode (no dropout) and an identical copy."""
    config = shrink(EncoderConfig.preset(preset), input_dim=80, dropout=0.0, attention_dropout=0.0)
    model = AsrModel(config, vocab_size=20).train()
    return model, copy.deepcopy(model)


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(4, 300, 80, generator=generator),
            torch.randint(100, 301, (4,), generator=generator),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("preset", PRESETS)
@torch.no_grad()
def test_bf16_running_statistics_stay_close_to_float32_ones(preset):
    """The same batches through a bf16-autocast twin and a float32 one (measured: < 1.3e-3).

    Under autocast each convolution sees its input rounded to bf16 (relative 2**-9) and
    returns bf16: the batch statistics of a channel move by a few 2**-9 of its std at most,
    less after averaging over frames; 2**-7 leaves a margin of about 6.
    """
    in_fp32, in_bf16 = _twins(preset)
    for x, lengths in _batches(3):
        in_fp32(x, lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16(x, lengths)
    norms = [(a, b) for a, b in zip(in_fp32.modules(), in_bf16.modules(), strict=True)
             if isinstance(a, MaskedBatchNorm)]  # fmt: skip
    assert norms
    for a, b in norms:
        assert b.running_mean.dtype == torch.float32
        std = a.running_var.sqrt()
        assert ((a.running_mean - b.running_mean).abs() / std).max() < 2**-7
        assert ((a.running_var - b.running_var).abs() / a.running_var).max() < 2**-7


@pytest.mark.parametrize("preset", PRESETS)
@torch.no_grad()
def test_eval_inference_under_bf16_autocast(preset):
    """float32 log-probs, finite, within bf16 rounding of float32 inference (measured 2.6e-3).

    The logits carry the relative 2**-9 rounding of bf16 matmuls through every block: a few
    1e-3 in probability, so 2**-6 leaves a margin of about 6.
    """
    in_fp32, in_bf16 = (model.eval() for model in _twins(preset))
    x, lengths = _batches(1)[0]
    expected, expected_lengths = in_fp32(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs, out_lengths = in_bf16(x, lengths)
    assert log_probs.dtype == torch.float32 and torch.equal(out_lengths, expected_lengths)
    real = torch.arange(log_probs.size(1))[None, :] < out_lengths[:, None]  # (B, T')
    assert torch.isfinite(log_probs[real]).all()
    assert (log_probs.exp() - expected.exp()).abs()[real].max() < 2**-6


@pytest.fixture(scope="module")
def corpus(corpus) -> Path:
    """The tiny corpus, with its first 12 training utterances as train12.jsonl.gz."""
    first_utterances(corpus, 12, corpus / "train12.jsonl.gz")
    return corpus


def tiny_gpu_recipe(path: Path, corpus: Path, steps: int, precision: str = "bf16"):
    """The GPU recipe with its switches kept, at width 32 and depth 4, on CPU, for `steps`."""
    overrides = [
        f"data.train={corpus / 'train12.jsonl.gz'}", f"data.dev={corpus / 'dev.jsonl.gz'}",
        "data.max_batch_seconds=30", "data.num_workers=0", "run.device=cpu",
        f"run.precision={precision}", f"run.max_steps={steps}", "run.checkpoint_every=3",
        "run.log_every=1", "run.average_last=2", "run.max_minutes=null",
        "optim.warmup_steps=2", "optim.hold_steps=1",
    ]  # fmt: skip
    config = load_recipe(path, overrides)
    assert config.run.precision == precision and config.spec_augment is not None
    encoder = shrink(config.encoder_config(), input_dim=config.features.n_mels)
    return replace(config, model=None, encoder=encoder)


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.stem)
def test_gpu_recipe_trains_resumes_and_evaluates_in_bf16(path, corpus, tmp_path):
    assert path.is_file()
    run = tmp_path / "run"
    train(tiny_gpu_recipe(path, corpus, steps=6), run)
    train(tiny_gpu_recipe(path, corpus, steps=12), run, resume=True)  # from checkpoint-6
    losses = [r["loss"] for r in read_metrics(run) if "loss" in r]
    steps = [r["step"] for r in read_metrics(run) if "loss" in r]
    assert steps == list(range(1, 13))  # the resumed run went on from step 7
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-3:]) < sum(losses[:3])  # CTC loss falls from its blank-free start
    latest = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert latest["train_state"]["step"] == 12
    model = load_model(run / "model")
    for module in model.modules():
        if isinstance(module, MaskedBatchNorm):
            assert module.running_mean.dtype == torch.float32
            assert torch.isfinite(module.running_var).all() and module.num_batches_tracked > 0
    result = evaluate(model, load_cuts(corpus / "test.jsonl.gz"))
    assert math.isfinite(result.rates["greedy"].cer) and len(result.rows) == 10


def test_masked_mean_accumulates_bf16_features_in_float32():
    """4 000 bf16 frames summed in bf16 would drift by many 2**-9; the mean is float32."""
    features = (1.0 + torch.rand(2, 4000, 3, generator=torch.Generator().manual_seed(0))).bfloat16()
    lengths = torch.tensor([4000, 1234])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean = masked_mean(features, lengths)
    assert mean.dtype == torch.float32
    expected = torch.stack([features[0].float().mean(0), features[1, :1234].float().mean(0)])
    torch.testing.assert_close(mean, expected)  # float32 sums of 4 000 values near 1.5
