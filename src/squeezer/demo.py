"""`make demo`: a Conformer and a Squeezeformer trained, scored and compared end to end.

The steps, each reusing what an earlier (possibly interrupted) run already finished:

1. build the synthetic corpus (`squeezer corpus synth`) unless it is complete;
2. train every recipe (configs/demo/*.yaml) into OUT/runs/NAME under the same step budget
   (the paper compares models at equal epochs), resuming from the last checkpoint after a crash;
3. score each model on the held-out test voices (greedy and beam search; per group of unseen
   voices), count its parameters and GFLOPs for 30 s of audio, time its encoder here;
4. transcribe a few test files with the better model;
5. write OUT/results.md, results.json and plots (training curves, WER versus GFLOPs).

    squeezer demo                                   # what `make demo` runs
    squeezer demo --steps 300 --out results/quick   # a shorter budget per model
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from lhotse import CutSet

from squeezer.analysis.bench_peer import FRAME_SHIFT_S, best_seconds, make_batch
from squeezer.analysis.flops import analytic_flops, frames_for_seconds
from squeezer.config import EncoderConfig
from squeezer.data.corpus import synthesize_corpus
from squeezer.data.manifests import load_cuts
from squeezer.evaluate import Evaluation, evaluate, write_evaluation
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.nn.encoder import SequenceEncoder
from squeezer.scoring import error_rates
from squeezer.structured import to_mapping
from squeezer.training import train
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import TrainConfig, load_recipe
from squeezer.transcribe import transcribe

__all__ = ["DEMO_RECIPES", "DemoSettings", "ModelResult", "run_demo", "voice_group"]

log = logging.getLogger(__name__)

DEMO_RECIPES = (Path("configs/demo/conformer.yaml"), Path("configs/demo/squeezeformer.yaml"))
FLOPS_SECONDS = 30.0  # the paper's Table 3 reports GFLOPs for 30 s of audio


@dataclass(frozen=True)
class DemoSettings:
    """What to train and where. `steps` / `minutes` override run.max_steps / run.max_minutes."""

    recipes: tuple[Path, ...] = DEMO_RECIPES
    corpus: Path = Path("data/synth-demo")
    size: str = "demo"
    out: Path = Path("results/demo")
    steps: int | None = None
    minutes: float | None = None
    beam: int = 8
    show: int = 4  # test files transcribed at the end
    jobs: int | None = None  # synthesis processes
    overrides: tuple[str, ...] = ()  # `--set key=value` applied to every recipe
    require_cuda: bool = False


@dataclass
class ModelResult:
    """One trained model's numbers, as they go into the comparison table."""

    name: str
    params: int
    gflops_30s: float
    encoder_audio_s_per_s: float
    steps: int
    train_minutes: float
    rates: dict[str, dict[str, float]]  # decoder -> {"wer", "cer"}
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # voice group -> rates
    model_dir: str = ""


def voice_group(cut, train_accents: set[str]) -> str:
    """Which kind of unseen voice a test cut has: another engine, accent, or voice variant."""
    custom = cut.supervisions[0].custom or {}
    engine, accent = custom.get("engine"), custom.get("accent")
    if engine is None or accent is None:
        return "other"
    if engine != "espeak-ng":
        return f"{engine} (unseen engine)"
    if accent not in train_accents:
        return "espeak-ng, unseen accent"
    return "espeak-ng, unseen variant"


def _recipe(settings: DemoSettings, path: Path) -> TrainConfig:
    """The recipe with the demo's corpus, budget and overrides applied."""
    corpus = settings.corpus.resolve()
    overrides = [f"data.train={corpus / 'train.jsonl.gz'}", f"data.dev={corpus / 'dev.jsonl.gz'}"]
    if settings.steps is not None:
        overrides.append(f"run.max_steps={settings.steps}")
    if settings.minutes is not None:
        overrides.append(f"run.max_minutes={settings.minutes}")
    if settings.require_cuda:
        overrides += ["run.device=cuda", "run.precision=bf16"]
    return load_recipe(path, overrides + list(settings.overrides))


def train_model(config: TrainConfig, run_dir: Path) -> Path:
    """Train into `run_dir`, or resume it, or reuse its finished model; the model directory.

    A run directory trained under a different recipe is refused rather than silently reused.
    """
    config_path, model_dir = run_dir / "config.yaml", run_dir / "model"
    if config_path.is_file():
        previous = yaml.safe_load(config_path.read_text())
        if previous != yaml.safe_load(yaml.safe_dump(to_mapping(config), sort_keys=False)):
            raise ValueError(
                f"{run_dir} holds a run of a different recipe; delete it or choose another --out"
            )
        if (model_dir / "model.safetensors").is_file():
            log.info("reusing the finished model in %s", model_dir)
            return model_dir
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    return train(config, run_dir, resume=resume)


def encoder_throughput(config: EncoderConfig, device: torch.device, repeats: int = 3) -> float:
    """Seconds of audio per second through the encoder alone: `make bench`'s batch (8 x 8-10 s
    of random features), eval mode, no_grad, fastest of `repeats` timed runs after a warm-up."""
    encoder = SequenceEncoder(config).to(device).eval()
    features, lengths = make_batch()  # (B, T, F), (B,) frames of FRAME_SHIFT_S
    features, lengths = features.to(device), lengths.to(device)

    def forward() -> None:
        encoder(features, lengths)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        seconds = best_seconds(forward, repeats, lambda: None)  # after one warm-up run
    return float(lengths.sum()) * FRAME_SHIFT_S / seconds


def _group_rates(evaluation: Evaluation, groups: dict[str, str]) -> dict[str, dict[str, float]]:
    """Greedy WER/CER per voice group of the test set."""
    by_group: dict[str, list[dict]] = {}
    for row in evaluation.rows:
        by_group.setdefault(groups.get(row["id"], "other"), []).append(row)
    result = {}
    for name, rows in sorted(by_group.items()):
        rates = error_rates([r["reference"] for r in rows], [r["hypothesis"] for r in rows])
        result[name] = {"wer": rates.wer, "cer": rates.cer, "utterances": len(rows)}
    return result


def _trained(run_dir: Path) -> tuple[int, float]:
    """Optimiser steps and training minutes of a finished run, from its metrics log (the last
    record of either kind: loss records come every run.log_every steps, dev records with each
    checkpoint, the final one included)."""
    records = [r for r in read_metrics(run_dir) if "step" in r and "time_s" in r]
    if not records:
        return 0, 0.0
    last = max(records, key=lambda r: (r["step"], r["time_s"]))
    return int(last["step"]), last["time_s"] / 60


def score_model(
    name: str,
    config: TrainConfig,
    model_dir: Path,
    test: CutSet,
    groups: dict[str, str],
    settings: DemoSettings,
) -> ModelResult:
    """Evaluate one trained model on the test set and measure its cost."""
    device = torch.device("cuda" if settings.require_cuda else "cpu")
    model = load_model(model_dir, device=device)
    evaluation = evaluate(model, test, beam_width=settings.beam)
    write_evaluation(evaluation, model_dir.parent / "eval-test")
    encoder = config.encoder_config()
    flops = analytic_flops(encoder, frames_for_seconds(FLOPS_SECONDS), model.vocab_size)
    steps, minutes = _trained(model_dir.parent)
    return ModelResult(
        name=name,
        params=sum(p.numel() for p in model.parameters()),
        gflops_30s=flops.total / 1e9,
        encoder_audio_s_per_s=encoder_throughput(encoder, device),
        steps=steps,
        train_minutes=minutes,
        rates={k: {"wer": v.wer, "cer": v.cer} for k, v in evaluation.rates.items()},
        groups=_group_rates(evaluation, groups),
        model_dir=str(model_dir),
    )


def _test_groups(corpus: Path) -> tuple[CutSet, dict[str, str]]:
    train_accents = {
        (cut.supervisions[0].custom or {}).get("accent")
        for cut in load_cuts(corpus / "train.jsonl.gz")
    }
    test = load_cuts(corpus / "test.jsonl.gz")
    return test, {cut.id: voice_group(cut, train_accents) for cut in test}


def _examples(model: AsrModel, test: CutSet, groups: dict[str, str], count: int) -> list[dict]:
    """Reference and hypothesis of `count` test files, one per voice group in turn."""
    chosen, seen = [], set()
    for cut in test:  # first the first file of every group, then the next ones in order
        if groups[cut.id] not in seen:
            seen.add(groups[cut.id])
            chosen.append(cut)
    chosen += [cut for cut in test if cut not in chosen]
    chosen = chosen[:count]
    paths = [cut.recording.sources[0].source for cut in chosen]
    results = transcribe(model, paths)
    return [
        {"file": path, "group": groups[cut.id], "reference": cut.supervisions[0].text,
         "hypothesis": result.text}
        for cut, path, result in zip(chosen, paths, results, strict=True)
    ]  # fmt: skip


def run_demo(settings: DemoSettings) -> tuple[list[ModelResult], list[dict]]:
    """Every step of the demo; the per-model results and the transcribed examples."""
    if settings.require_cuda and not torch.cuda.is_available():
        raise RuntimeError("the GPU demo needs a CUDA device; torch.cuda.is_available() is False")
    names = [path.stem for path in settings.recipes]
    if len(set(names)) != len(names):
        raise ValueError(f"recipe names must differ (they name the run folders): {names}")
    summary = synthesize_corpus(settings.corpus, settings.size, jobs=settings.jobs, progress=True)
    print(summary.to_markdown())
    configs = {n: _recipe(settings, p) for n, p in zip(names, settings.recipes, strict=True)}
    model_dirs = {}
    for name, config in configs.items():  # every recipe is read before hours of training
        print(f"\n== training {name} ({settings.out / 'runs' / name}) ==")
        model_dirs[name] = train_model(config, settings.out / "runs" / name)
    test, groups = _test_groups(settings.corpus)
    results = []
    for name, config in configs.items():
        print(f"\n== scoring {name} on {len(test)} test utterances ==")
        results.append(score_model(name, config, model_dirs[name], test, groups, settings))
    best = min(results, key=lambda r: r.rates["greedy"]["cer"])
    model = load_model(best.model_dir)
    return results, _examples(model, test, groups, settings.show)


def write_demo_results(
    settings: DemoSettings, results: Sequence[ModelResult], examples: list[dict], command: str
) -> Path:
    """results.md, results.json and the two plots in settings.out; returns results.md."""
    from squeezer.demo_report import write_report

    return write_report(settings.out, results, examples, command)
