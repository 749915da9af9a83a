"""`make demo`: a Conformer and a Squeezeformer of the same FLOPs trained, scored and compared.

The steps, each reusing what an earlier (possibly interrupted) run already finished:

1. check every input (recipes, overrides, run folders, output folder) before any work;
2. build the synthetic corpus (`squeezer corpus synth`) unless it is complete;
3. train every recipe (packaged `demo/*` by default) into OUT/runs/NAME (NAME-seedK for more
   seeds) under the same step budget, side by side on the CPU's cores (`demo_runs`), resuming
   from the last checkpoint after a crash;
4. score each model on the held-out test voices (greedy and beam search; per engine and group
   of unseen voices), count its parameters and GFLOPs for 30 s of audio, time its encoder;
5. compare each Squeezeformer with the Conformer: CER difference with a paired bootstrap 95 %
   interval (`analysis.significance`); skip blocks and the half-rate branch (`analysis.bypass`)
   and measure temporal redundancy (`analysis.redundancy`), so every run shows whether the
   U-Net's half-rate blocks do any work;
6. transcribe a few test files with the better model and write OUT/results.md, results.json
   and the plots (`demo_report`).

    squeezer demo                                   # what `make demo` runs
    squeezer demo --steps 300 --out results/quick   # a shorter budget per model
    squeezer demo --seeds 3                         # each model trained with 3 seeds
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from squeezer.analysis.bench_peer import FRAME_SHIFT_S, best_seconds, make_batch
from squeezer.analysis.bypass import (
    BypassRow,
    attention_entropy,
    bypass_table,
    feature_batches,
    half_rate_fit,
    official_half_rate_span,
    recovery_norms,
)
from squeezer.analysis.flops import analytic_flops, frames_for_seconds
from squeezer.analysis.redundancy import RedundancyReport, block_redundancy
from squeezer.analysis.significance import PairedDifference, paired_bootstrap
from squeezer.config import EncoderConfig
from squeezer.data.corpus import synthesize_corpus
from squeezer.data.manifests import load_cuts
from squeezer.demo_runs import DemoRun, check_run_dir, train_runs
from squeezer.evaluate import Evaluation, evaluate, write_evaluation
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.nn.encoder import SequenceEncoder
from squeezer.scoring import error_rates
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import TrainConfig, find_recipe, load_recipe
from squeezer.transcribe import transcribe

__all__ = [
    "DEMO_RECIPES",
    "Comparison",
    "DemoSettings",
    "ModelAnalysis",
    "ModelResult",
    "run_demo",
    "voice_group",
]

log = logging.getLogger(__name__)

# The headline pair: the Conformer and a Squeezeformer of the same FLOPs for 30 s of audio.
# demo/squeezeformer-params is the pair at equal parameters (`--recipes` adds it).
DEMO_RECIPES = ("demo/conformer", "demo/squeezeformer")
FLOPS_SECONDS = 30.0  # the paper's Table 3 reports GFLOPs for 30 s of audio
EQUAL_WITHIN = 0.05  # FLOPs or parameters within 5 % count as equal
REDUNDANCY_UTTERANCES = 100
REDUNDANCY_DISTANCE = 8


@dataclass(frozen=True)
class DemoSettings:
    """What to train and where. `steps` / `minutes` override run.max_steps / run.max_minutes.

    `parallel`: trainings at once, each on cpu_count // parallel threads (None: as many as
    there are runs and cores; 1 on a GPU). Side by side, 1-thread trainings on 2 cores do
    about 1.25x the steps per second of one 2-thread training after the other, and the models
    compared train under the same conditions.
    """

    recipes: tuple[str, ...] = DEMO_RECIPES
    corpus: Path = Path("data/synth-demo")
    size: str = "demo"
    out: Path = Path("results/demo")
    steps: int | None = None
    minutes: float | None = None
    seeds: int = 1
    parallel: int | None = None
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
    seed: int = 0
    # utterance id -> [greedy character errors, reference characters], for paired comparisons
    utterances: dict[str, list[int]] = field(default_factory=dict, repr=False)


@dataclass
class Comparison:
    """A Squeezeformer against the Conformer baseline over every seed of both."""

    baseline: str
    candidate: str
    flops_ratio: float
    params_ratio: float
    cer: PairedDifference
    seed_differences: list[float]  # CER(candidate) - CER(baseline), seed by seed

    @property
    def kind(self) -> str:
        """What the pair holds equal: 'equal FLOPs', 'equal parameters', or neither."""
        equal = []
        if abs(self.flops_ratio - 1) <= EQUAL_WITHIN:
            equal.append("FLOPs")
        if abs(self.params_ratio - 1) <= EQUAL_WITHIN:
            equal.append("parameters")
        return "equal " + " and ".join(equal) if equal else "neither FLOPs nor parameters equal"


@dataclass
class ModelAnalysis:
    """Where a trained model (its first seed) does its work: bypass table, recovery norms,
    redundancy (raw and centred)."""

    name: str
    bypass: list[BypassRow]
    recovery: dict[str, float] | None
    redundancy: dict[str, RedundancyReport]  # "raw", "centred"
    fit: dict[str, float] | None = None  # `analysis.bypass.HalfRateFit` on the test split
    attention_entropy: list[float] = field(default_factory=list)  # per block, 1 = uniform


def voice_group(cut, train_accents: set[str]) -> str:
    """Which kind of unseen voice a test cut has: the corpus's own `group` label (engine and
    what is held out), else (older corpora) another engine, accent, or voice variant."""
    custom = cut.supervisions[0].custom or {}
    if custom.get("group"):
        return custom["group"]
    engine, accent = custom.get("engine"), custom.get("accent")
    if engine is None or accent is None:
        return "other"
    if engine != "espeak-ng":
        return f"{engine} (unseen engine)"
    if accent not in train_accents:
        return "espeak-ng, unseen accent"
    return "espeak-ng, unseen variant"


def recipe_name(recipe: str) -> str:
    """The run folder's name for a recipe file or packaged name: `demo/conformer` -> conformer."""
    return Path(str(recipe)).name.removesuffix(".yaml")


def _recipe(settings: DemoSettings, recipe: str | Path, seed: int = 0) -> TrainConfig:
    """The recipe with the demo's corpus, budget, seed and overrides applied."""
    corpus = settings.corpus.resolve()
    overrides = [f"data.train={corpus / 'train.jsonl.gz'}", f"data.dev={corpus / 'dev.jsonl.gz'}"]
    if settings.steps is not None:
        overrides.append(f"run.max_steps={settings.steps}")
    if settings.minutes is not None:
        overrides.append(f"run.max_minutes={settings.minutes}")
    if settings.require_cuda:
        overrides += ["run.device=cuda", "run.precision=bf16"]
    config = load_recipe(recipe, overrides + list(settings.overrides))
    if seed:
        config = replace(config, run=replace(config.run, seed=config.run.seed + seed))
    return config


def plan_runs(settings: DemoSettings) -> list[DemoRun]:
    """Every (recipe, seed) run, each recipe read and checked against its run folder: the
    errors a user can fix come before minutes of synthesis and training, not after."""
    if settings.seeds < 1:
        raise ValueError(f"--seeds {settings.seeds}: must be at least 1")
    if settings.parallel is not None and settings.parallel < 1:
        raise ValueError(f"--parallel {settings.parallel}: must be at least 1")
    for path, what in ((settings.out, "--out"), (settings.corpus, "--corpus")):
        if path.exists() and not path.is_dir():
            raise ValueError(f"{what} {path}: exists and is not a folder")
    names = [recipe_name(recipe) for recipe in settings.recipes]
    if len(set(names)) != len(names):
        raise ValueError(f"recipe names must differ (they name the run folders): {names}")
    runs = []
    for recipe, name in zip(settings.recipes, names, strict=True):
        find_recipe(recipe)  # a missing recipe is named as given
        for seed in range(settings.seeds):
            folder = name if seed == 0 else f"{name}-seed{seed}"
            run = DemoRun(
                name, seed, _recipe(settings, recipe, seed), settings.out / "runs" / folder
            )
            check_run_dir(run.config, run.run_dir)
            runs.append(run)
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out {settings.out}: cannot create it ({error.strerror})") from None
    return runs


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
    run: DemoRun, model_dir: Path, test: CutSet, groups: dict[str, str], settings: DemoSettings
) -> ModelResult:
    """Evaluate one trained model on the test set and measure its cost."""
    device = torch.device("cuda" if settings.require_cuda else "cpu")
    model = load_model(model_dir, device=device)
    evaluation = evaluate(model, test, beam_width=settings.beam)
    write_evaluation(evaluation, model_dir.parent / "eval-test")
    encoder = run.config.encoder_config()
    flops = analytic_flops(encoder, frames_for_seconds(FLOPS_SECONDS), model.vocab_size)
    steps, minutes = _trained(model_dir.parent)
    return ModelResult(
        name=run.name,
        params=sum(p.numel() for p in model.parameters()),
        gflops_30s=flops.total / 1e9,
        encoder_audio_s_per_s=encoder_throughput(encoder, device),
        steps=steps,
        train_minutes=minutes,
        rates={k: {"wer": v.wer, "cer": v.cer} for k, v in evaluation.rates.items()},
        groups=_group_rates(evaluation, groups),
        model_dir=str(model_dir),
        seed=run.seed,
        utterances={r["id"]: [r["char_errors"], r["reference_chars"]] for r in evaluation.rows},
    )


def is_conformer(config: EncoderConfig) -> bool:
    """The baseline's shape: Conformer blocks at one frame rate."""
    return config.block_layout == "conformer" and not config.uses_unet


def compare(results: Sequence[ModelResult], encoders: dict[str, EncoderConfig]) -> list[Comparison]:
    """Every other model against the first Conformer: greedy CER difference with its paired
    bootstrap interval over the test utterances every run decoded, each utterance's errors
    averaged over a model's seeds."""
    baseline = next((name for name, config in encoders.items() if is_conformer(config)), None)
    if baseline is None:
        return []
    by_name: dict[str, list[ModelResult]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    comparisons = []
    for name, runs in by_name.items():
        if name == baseline:
            continue
        base_runs = by_name[baseline]
        common = sorted(set.intersection(*(set(r.utterances) for r in [*runs, *base_runs])))

        def mean_errors(group: list[ModelResult], ids: list[str] = common) -> np.ndarray:
            return np.mean([[r.utterances[i][0] for i in ids] for r in group], axis=0)

        lengths = [base_runs[0].utterances[i][1] for i in common]
        paired = paired_bootstrap(mean_errors(base_runs), mean_errors(runs), lengths)
        seeds = sorted({r.seed for r in runs} & {r.seed for r in base_runs})
        per_seed = [
            next(r for r in runs if r.seed == s).rates["greedy"]["cer"]
            - next(r for r in base_runs if r.seed == s).rates["greedy"]["cer"]
            for s in seeds
        ]
        comparisons.append(Comparison(
            baseline, name,
            flops_ratio=runs[0].gflops_30s / base_runs[0].gflops_30s,
            params_ratio=runs[0].params / base_runs[0].params,
            cer=paired, seed_differences=per_seed,
        ))  # fmt: skip
    return comparisons


def analyse_model(name: str, model_dir: str, test: CutSet, group: tuple[int, ...]) -> ModelAnalysis:
    """Bypass table (with `group`: the Squeezeformer's half-rate span, skipped together here
    too), recovery norms, half-rate fit and redundancy of one trained model on the test split,
    its audio decoded and its features computed once for all of them."""
    model = load_model(model_dir).eval()
    batches = feature_batches(model, test)
    rows = bypass_table(model, batches, group=group)
    norms = recovery_norms(model, batches)
    measured, count = [], 0
    for batch in batches:  # the first REDUNDANCY_UTTERANCES utterances
        if count >= REDUNDANCY_UTTERANCES:
            break
        take = min(len(batch.texts), REDUNDANCY_UTTERANCES - count)
        measured.append((batch.features[:take], batch.lengths[:take]))
        count += take
    redundancy = {}
    for label, center in (("raw", False), ("centred", True)):
        redundancy[label] = block_redundancy(
            model, measured, max_distance=REDUNDANCY_DISTANCE, name=name, center=center
        )
    recovery = None if norms is None else {"skip": norms.skip, "branch": norms.branch}
    fit = half_rate_fit(model, test)
    entropy = attention_entropy(model, batches)
    fit_values = None if fit is None else asdict(fit)
    return ModelAnalysis(name, rows, recovery, redundancy, fit_values, entropy)


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


@dataclass
class DemoOutcome:
    """Everything the report shows."""

    results: list[ModelResult]
    comparisons: list[Comparison]
    analyses: list[ModelAnalysis]
    examples: list[dict]
    minutes: dict[str, float]  # phase -> wall-clock minutes of this invocation


def run_demo(settings: DemoSettings) -> DemoOutcome:
    """Every step of the demo (see the module docstring)."""
    if settings.require_cuda and not torch.cuda.is_available():
        raise RuntimeError("the GPU demo needs a CUDA device; torch.cuda.is_available() is False")
    runs = plan_runs(settings)
    clock, minutes = time.perf_counter(), {}

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        minutes[phase] = (now - clock) / 60
        clock = now

    summary = synthesize_corpus(settings.corpus, settings.size, jobs=settings.jobs, progress=True)
    print(summary.to_markdown())
    lap("corpus")
    parallel = 1 if settings.require_cuda else settings.parallel
    model_dirs = train_runs(runs, parallel, os.cpu_count() or 1)
    lap("training")
    test, groups = _test_groups(settings.corpus)
    results = []
    for run in runs:
        print(f"\n== scoring {run.run_dir.name} on {len(test)} test utterances ==")
        results.append(score_model(run, model_dirs[run.run_dir], test, groups, settings))
    encoders = {run.name: run.config.encoder_config() for run in runs}
    comparisons = compare(results, encoders)
    lap("scoring")
    first_seed = [r for r in results if r.seed == 0]
    analyses = []
    for result in first_seed:
        print(f"\n== where {result.name} does its work (bypass, redundancy) ==")
        # A model without a U-Net loses the blocks a Squeezeformer of its depth halves.
        group = official_half_rate_span(encoders[result.name].num_layers)
        analyses.append(analyse_model(result.name, result.model_dir, test, group))
    lap("analysis")
    best = min(first_seed, key=lambda r: r.rates["greedy"]["cer"])
    examples = _examples(load_model(best.model_dir), test, groups, settings.show)
    lap("examples")
    return DemoOutcome(results, comparisons, analyses, examples, minutes)


def write_demo_results(settings: DemoSettings, outcome: DemoOutcome, command: str) -> Path:
    """results.md, results.json and the plots in settings.out; returns results.md."""
    from squeezer.demo_report import write_report

    return write_report(settings.out, outcome, command)
