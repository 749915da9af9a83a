"""`squeezer demo` (make demo): voice groups, the report's tables and verdict, reuse, end to end.

The end-to-end test trains the two demo recipes shrunk to a few steps on the tiny corpus; the
real budget and targets are checked by running `make demo`, never here.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from squeezer import cli, demo_runs
from squeezer import demo as demo_module
from squeezer.analysis.flops import analytic_flops, frames_for_seconds
from squeezer.analysis.significance import PairedDifference
from squeezer.cli import main
from squeezer.data.manifests import load_cuts
from squeezer.demo import (
    DEMO_RECIPES,
    Comparison,
    DemoOutcome,
    DemoSettings,
    ModelResult,
    _recipe,
    compare,
    plan_runs,
    voice_group,
)
from squeezer.demo_report import comparison_table, group_table, pairs_table, verdict, write_report
from squeezer.demo_runs import train_model
from squeezer.plots import plot_runs
from squeezer.training.recipe import find_recipe, load_recipe

REPO = Path(__file__).resolve().parents[1]


def _cut(engine: str | None, accent: str | None, group: str | None = None) -> SimpleNamespace:
    values = {"engine": engine, "accent": accent, "group": group}
    custom = {k: v for k, v in values.items() if v is not None}
    return SimpleNamespace(supervisions=[SimpleNamespace(custom=custom)])


def test_voice_group_names_what_is_unseen():
    train_accents = {"en-us", "en-gb"}
    # A corpus that labels its held-out groups is taken at its word.
    assert voice_group(_cut("flite", "en-us", "flite, unseen voice"), train_accents) == (
        "flite, unseen voice"
    )
    assert voice_group(_cut("flite", "en-us"), train_accents) == "flite (unseen engine)"
    assert voice_group(_cut("espeak-ng", "en-sc"), train_accents) == "espeak-ng, unseen accent"
    assert voice_group(_cut("espeak-ng", "en-us"), train_accents) == "espeak-ng, unseen variant"
    assert voice_group(_cut(None, None), train_accents) == "other"


def _result(
    name: str,
    gflops: float,
    wer: float,
    cer: float,
    steps: int = 100,
    seed: int = 0,
    errors: list[int] | None = None,
) -> ModelResult:
    errors = errors if errors is not None else [round(cer * 20)] * 30
    return ModelResult(
        name=name, params=2_870_000, gflops_30s=gflops, encoder_audio_s_per_s=500.0,
        steps=steps, train_minutes=9.5,
        rates={"greedy": {"wer": wer, "cer": cer}, "beam": {"wer": wer - 0.01, "cer": cer}},
        groups={"flite (unseen engine)": {"wer": wer, "cer": cer + 0.1, "utterances": 40}},
        seed=seed, utterances={f"u{i}": [e, 20] for i, e in enumerate(errors)},
    )  # fmt: skip


def test_comparison_and_group_tables_hold_the_numbers():
    results = [_result("conformer", 11.94, 0.40, 0.12), _result("squeezeformer", 6.60, 0.35, 0.10)]
    table = comparison_table(results)
    assert "| conformer | 2.87 | 11.94 | 500 | 100 | 9.5 | 40.0 | 12.0 | 39.0 | 12.0 |" in table
    assert "| squeezeformer | 2.87 | 6.60 |" in table
    groups = group_table(results)
    assert "| flite (unseen engine) | 40 | 22.0 | 20.0 |" in groups


def _comparison(difference: float, low: float, high: float, seeds=(0.0,)) -> Comparison:
    paired = PairedDifference(difference, low, high, 300, 10_000, 0.95)
    return Comparison("conformer", "squeezeformer", 1.0, 2.05, paired, list(seeds))


def test_verdict_comes_from_the_interval_not_the_point_estimate():
    results = [_result("conformer", 12.0, 0.40, 0.12), _result("squeezeformer", 12.0, 0.3, 0.1)]
    lines = verdict(results, [_comparison(-0.02, -0.035, -0.005)])
    assert lines[0] == "conformer: test CER 12.0 % meets the 15.0 % target."
    assert (
        "squeezeformer (equal FLOPs: 1.00x the FLOPs, 2.05x the parameters of conformer)"
        in (lines[2])
    )
    assert "is better than conformer" in lines[2] and "[-3.5, -0.5]" in lines[2]
    assert "One seed per model" in lines[3]  # what a single seed cannot show
    # The same point estimate with an interval across zero decides nothing.
    undecided = verdict(results, [_comparison(-0.02, -0.05, 0.01)])
    assert "is not distinguishable from conformer" in undecided[2]
    assert "is worse than" in verdict(results, [_comparison(0.02, 0.01, 0.03)])[2]
    assert verdict([_result("conformer", 12, 0.3, 0.2)])[0].endswith("misses the 15.0 % target.")
    uneven = [_result("conformer", 12, 0.3, 0.1, steps=90), _result("squeezeformer", 12, 0.3, 0.1)]
    assert "different numbers of steps (conformer 90, squeezeformer 100;" in verdict(uneven)[2]


def test_seeds_are_reported_with_their_spread():
    results = [_result("conformer", 12, 0.3, 0.1, seed=s) for s in (0, 1)]
    results += [_result("squeezeformer", 12, 0.3, 0.1, seed=s) for s in (0, 1)]
    lines = verdict(results, [_comparison(-0.01, -0.02, 0.005, seeds=(-0.02, 0.004))])
    assert "2 seeds per model" in lines[4]
    assert "ranges from -2.0 to +0.4 points" in lines[5]
    assert not any("One seed" in line for line in lines)
    assert "| conformer (seed 1) |" in comparison_table(results)
    assert "| squeezeformer vs conformer | equal FLOPs | 1.00 | 2.05 | -1.0 | [-2.0, +0.5] | " in (
        pairs_table([_comparison(-0.01, -0.02, 0.005, seeds=(-0.02, 0.004))])
    )


def test_compare_pairs_every_squeezeformer_with_the_conformer_over_seeds():
    encoders = {
        name: load_recipe(f"demo/{name}").encoder_config()
        for name in ("conformer", "squeezeformer")
    }
    # 30 utterances of 20 characters: the Squeezeformer makes 1 error fewer on each, per seed.
    results = [_result("conformer", 11.9, 0.3, 0.2, seed=s, errors=[4] * 30) for s in (0, 1)]
    results += [_result("squeezeformer", 11.9, 0.3, 0.15, seed=s, errors=[3] * 30) for s in (0, 1)]
    for result in results[2:]:
        result.params = 5_770_000  # the equal-FLOPs Squeezeformer is twice the size
    (comparison,) = compare(results, encoders)
    assert (comparison.baseline, comparison.candidate) == ("conformer", "squeezeformer")
    assert comparison.cer.difference == pytest.approx(-1 / 20)
    assert comparison.cer.verdict == "better"
    assert comparison.seed_differences == [pytest.approx(-0.05)] * 2
    assert comparison.kind == "equal FLOPs"
    assert compare(results[2:], {"squeezeformer": encoders["squeezeformer"]}) == []


def test_cli_default_recipes_are_the_demos():
    # squeezer.cli spells them out so that `--help` does not import the training stack.
    assert cli._DEMO_RECIPES == DEMO_RECIPES


def _cost(recipe: str) -> tuple[float, int]:
    encoder = load_recipe(recipe).encoder_config()
    flops = analytic_flops(encoder, frames_for_seconds(30.0), 28).total
    return flops, sum(p.numel() for p in demo_module.SequenceEncoder(encoder).parameters())


def test_demo_recipes_are_the_papers_pairs_under_one_budget():
    names = ("demo/conformer", "demo/squeezeformer", "demo/squeezeformer-params")
    configs = {name: load_recipe(name) for name in names}
    conformer = configs["demo/conformer"]
    for config in configs.values():
        assert config.run == conformer.run and config.data == conformer.data
        # The same recipe but for the peak LR: the Squeezeformers' is the paper's for SM/M.
        assert config.optim == replace(conformer.optim, peak_lr=config.optim.peak_lr)
    assert configs["demo/squeezeformer"].optim.peak_lr == 1.5e-3
    assert conformer.encoder.block_layout == "conformer"
    assert configs["demo/squeezeformer"].encoder.block_layout == "squeezeformer"
    flops, params = _cost("demo/conformer")
    # Headline pair: equal FLOPs for 30 s (issue #17: within 5 %); the other: equal size.
    assert _cost("demo/squeezeformer")[0] == pytest.approx(flops, rel=0.05)
    assert _cost("demo/squeezeformer-params")[1] == pytest.approx(params, rel=0.05)


def test_recipe_takes_the_demos_corpus_budget_seed_and_overrides(tmp_path):
    settings = DemoSettings(
        corpus=tmp_path, steps=700, minutes=2.5, overrides=("optim.peak_lr=1e-3",)
    )
    config = _recipe(settings, "demo/squeezeformer")
    assert config.data.train == str(tmp_path.resolve() / "train.jsonl.gz")
    assert config.run.max_steps == 700 and config.run.max_minutes == 2.5
    assert config.optim.peak_lr == 1e-3
    assert _recipe(settings, "demo/squeezeformer", seed=2).run.seed == config.run.seed + 2


def test_every_input_is_checked_before_any_work(tmp_path, monkeypatch, capsys):
    # Nothing may be synthesised or trained when a recipe, an override or a folder is wrong.
    monkeypatch.setattr(demo_module, "synthesize_corpus", lambda *a, **k: pytest.fail("synth"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    cases = [
        (["--recipes", "demo/nope"], "demo/nope: no such recipe"),
        (["--set", "optim.peak_lr=abc"], "optim.peak_lr"),
        (["--steps", "100"], "run.max_steps=100 must exceed"),
        (["--out", "afile"], "--out afile: exists and is not a folder"),
        (["--corpus", "afile"], "--corpus afile: exists and is not a folder"),
        (["--seeds", "0"], "--seeds 0"),
        (["--recipes", "demo/conformer", "conformer.yaml"], "recipe names must differ"),
    ]
    (tmp_path / "conformer.yaml").write_text(find_recipe("demo/conformer").read_text())
    for extra, message in cases:
        assert main(["demo", *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (extra, err)
    # A run folder of another recipe is refused before the corpus is built.
    run = tmp_path / "results/demo/runs/conformer"
    run.mkdir(parents=True)
    load_recipe("demo/conformer", ["optim.peak_lr=1e-4"]).to_yaml(run / "config.yaml")
    assert main(["demo"]) == 2
    assert "holds a run of a different recipe" in capsys.readouterr().err


def test_demo_runs_from_any_folder_with_packaged_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = plan_runs(DemoSettings(seeds=2))
    assert [run.run_dir.name for run in runs] == [
        "conformer",
        "conformer-seed1",
        "squeezeformer",
        "squeezeformer-seed1",
    ]
    assert runs[0].config.data.train == str(tmp_path / "data/synth-demo/train.jsonl.gz")


def test_train_model_reuses_a_finished_run_and_refuses_another_recipe(tmp_path, monkeypatch):
    config = load_recipe("demo/squeezeformer")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    config.to_yaml(run / "config.yaml")
    (run / "model" / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(demo_runs, "train", lambda *a, **k: pytest.fail("must not train"))
    assert train_model(config, run) == run / "model"
    other = load_recipe("demo/squeezeformer", ["optim.peak_lr=1e-3"])
    with pytest.raises(ValueError, match="different recipe"):
        train_model(other, run)


def test_gpu_demo_without_cuda_is_one_clear_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["demo", "--gpu", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "squeezer demo: error: the GPU demo needs a CUDA device; torch.cuda.is_available() is False"
    )


def _tiny_recipe(source: Path, out: Path) -> Path:
    """The demo recipe at test size: 4 narrow blocks, 4 steps, checkpoints every 2."""
    values = yaml.safe_load(source.read_text())
    encoder = values["encoder"]
    encoder.update(d_model=32, num_layers=4, num_heads=4, conv_kernel_size=7)
    if encoder["time_reduce_idx"] is not None:
        encoder.update(time_reduce_idx=1, time_recover_idx=3)
    values["data"].update(max_batch_seconds=30, num_workers=0)
    values["optim"].update(warmup_steps=1, hold_steps=1)
    values["run"].update(max_steps=4, max_minutes=None, checkpoint_every=2, average_last=2)
    out.write_text(yaml.safe_dump(values))
    return out


def test_demo_end_to_end_on_the_tiny_corpus(corpus, tmp_path, capsys, monkeypatch):
    recipes = [
        str(_tiny_recipe(find_recipe(name), tmp_path / f"{Path(name).name}.yaml"))
        for name in DEMO_RECIPES
    ]  # named conformer.yaml and squeezeformer.yaml, as the run folders will be
    out = tmp_path / "results"
    argv = ["demo", "--recipes", *recipes, "--corpus", str(corpus), "--size", "tiny",
            "--out", str(out), "--beam", "2", "--show", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("REF: ") == 2 and printed.count("HYP: ") == 2
    assert "| conformer |" in printed and "| squeezeformer |" in printed
    assert "| squeezeformer vs conformer |" in printed  # the pair, with its interval
    assert "95 % paired bootstrap interval" in printed and "One seed per model" in printed

    report = json.loads((out / "results.json").read_text())
    models = {m["name"]: m for m in report["models"]}
    assert set(models) == {"conformer", "squeezeformer"}
    for model in models.values():
        assert model["steps"] == 4  # the same step budget for both
        assert set(model["rates"]) == {"greedy", "beam"}
        assert model["params"] > 0 and model["encoder_audio_s_per_s"] > 0
        test_cuts = len(load_cuts(corpus / "test.jsonl.gz"))
        assert sum(group["utterances"] for group in model["groups"].values()) == test_cuts
    # The U-Net halves the frame rate for half the blocks: fewer FLOPs at the same width.
    assert models["squeezeformer"]["gflops_30s"] < models["conformer"]["gflops_30s"]
    (comparison,) = report["comparisons"]
    assert comparison["cer"]["low"] <= comparison["cer"]["difference"] <= comparison["cer"]["high"]
    assert comparison["cer"]["utterances"] == test_cuts
    # Where each model works: every block skipped alone, the U-Net's half-rate branch (blocks
    # 1-2 of the tiny Squeezeformer), and the Conformer's blocks at the same positions.
    analyses = {a["name"]: a for a in report["analyses"]}
    squeeze_rows = [row["label"] for row in analyses["squeezeformer"]["bypass"]]
    conform_rows = [row["label"] for row in analyses["conformer"]["bypass"]]
    assert squeeze_rows == ["none", *(f"block {i}" for i in range(4)),
                            "half-rate branch (blocks 1-2)"]  # fmt: skip
    assert conform_rows == ["none", *(f"block {i}" for i in range(4)), "blocks 1-2"]
    assert analyses["squeezeformer"]["recovery"]["skip"] > 0
    assert analyses["conformer"]["recovery"] is None
    assert 0 <= analyses["squeezeformer"]["half_rate_fit"]["too_long"] <= 1
    assert analyses["conformer"]["half_rate_fit"] is None
    for analysis in analyses.values():
        assert len(analysis["attention_entropy"]) == 4
        assert all(0 < e <= 1 + 1e-6 for e in analysis["attention_entropy"])
    text = (out / "results.md").read_text()
    for name in (
        "results.md",
        "curves.png",
        "curves_time.png",
        "wer_vs_gflops.png",
        "redundancy_squeezeformer_raw.png",
        "redundancy_conformer_centred.png",
    ):
        assert (out / name).stat().st_size > 0
        assert name == "results.md" or f"({name})" in text
    assert "| squeezeformer |" in text and "| half-rate branch (blocks 1-2) |" in text
    assert "Attention entropy per block" in text
    # Trained side by side (2 runs, 2 cores), each logging into its own run folder.
    assert "training 2 runs, 2 at a time" in printed
    assert (out / "runs/conformer/train.log").stat().st_size > 0

    # A second run reuses both finished models (and the corpus) instead of training again.
    monkeypatch.setattr(demo_runs, "train", lambda *a, **k: pytest.fail("must not train"))
    monkeypatch.setattr(demo_runs, "_launch", lambda *a, **k: pytest.fail("must not train"))
    assert main(argv) == 0
    capsys.readouterr()
    # Another recipe for the same run folders is refused with one line, nothing overwritten.
    assert main([*argv, "--set", "optim.peak_lr=1e-3"]) == 2
    assert "holds a run of a different recipe" in capsys.readouterr().err


def test_report_without_beam_search(tmp_path):
    runs = []
    for name in ("conformer", "squeezeformer"):
        run = tmp_path / name
        (run / "model").mkdir(parents=True)
        records = [{"step": s, "loss": 3.0 / s, "lr": 1e-3, "time_s": 2.0 * s} for s in (1, 2)]
        records.append({"step": 2, "dev_wer": 0.5, "dev_cer": 0.2, "time_s": 4.0})
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        result = _result(name, 6.0 if name == "squeezeformer" else 12.0, 0.3, 0.1)
        result.rates.pop("beam")
        result.model_dir = str(run / "model")
        runs.append(result)
    outcome = DemoOutcome(runs, [], [], [], {"corpus": 0.1, "training": 2.0})
    report = write_report(tmp_path / "out", outcome, "squeezer demo --beam 0")
    text = report.read_text()
    assert "Command: `squeezer demo --beam 0`" in text
    assert "This invocation took 2.1 minutes (corpus 0.1, training 2.0)." in text
    assert "| 30.0 | 10.0 | - | - |" in text  # greedy only: the beam columns say so
    with pytest.raises(ValueError, match="x='epoch'"):
        plot_runs([tmp_path / "conformer"], tmp_path / "bad.png", x="epoch")  # type: ignore[arg-type]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def test_train_runs_one_at_a_time_in_this_process(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(demo_runs, "_launch", lambda *a, **k: pytest.fail("no child process"))
    monkeypatch.setattr(demo_runs, "train", lambda config, run_dir, resume: trained.append(run_dir))
    config = load_recipe("demo/conformer")
    runs = [demo_runs.DemoRun("a", 0, config, tmp_path / "a"),
            demo_runs.DemoRun("b", 0, config, tmp_path / "b")]  # fmt: skip
    assert demo_runs.train_runs(runs, parallel=1, cores=2) == {
        tmp_path / "a": tmp_path / "a/model",
        tmp_path / "b": tmp_path / "b/model",
    }
    assert trained == [tmp_path / "a", tmp_path / "b"]


def test_a_failing_training_stops_the_others_after_their_checkpoint(corpus, tmp_path, monkeypatch):
    # Side by side: one run cannot read its manifest; the other, still training, is sent
    # SIGTERM, writes its checkpoint and exits, so a rerun of the demo resumes it.
    launch = demo_runs._launch

    def bad_once_good_trains(run, threads):
        if run.name == "bad":  # fail only once the good run is past its first step
            deadline = time.monotonic() + 300
            while not any('"step"' in line for line in _lines(tmp_path / "good/metrics.jsonl")):
                assert time.monotonic() < deadline, (tmp_path / "good/train.log").read_text()
                time.sleep(0.2)
        return launch(run, threads)

    monkeypatch.setattr(demo_runs, "_launch", bad_once_good_trains)
    recipe = _tiny_recipe(find_recipe("demo/squeezeformer"), tmp_path / "s.yaml")
    good = load_recipe(recipe, [f"data.train={corpus / 'train.jsonl.gz'}", "run.max_steps=5000",
                                f"data.dev={corpus / 'dev.jsonl.gz'}"])  # fmt: skip
    bad = load_recipe(recipe, [f"data.train={tmp_path / 'missing.jsonl.gz'}"])
    runs = [demo_runs.DemoRun("good", 0, good, tmp_path / "good"),
            demo_runs.DemoRun("bad", 0, bad, tmp_path / "bad")]  # fmt: skip
    with pytest.raises(RuntimeError) as error:
        demo_runs.train_runs(runs, parallel=2, cores=2)
    message = str(error.value)
    assert message.startswith("training bad failed (exit 2): ") and "\n" not in message
    assert "missing.jsonl.gz" in message and f"log: {tmp_path / 'bad'}/train.log" in message
    assert "SIGTERM: stopped at step" in (tmp_path / "good/train.log").read_text()
    assert any((tmp_path / "good/checkpoints").glob("checkpoint-*.pt"))
