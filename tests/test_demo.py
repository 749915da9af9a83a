"""`squeezer demo` (make demo): voice groups, the report's tables and verdict, reuse, end to end.

The end-to-end test trains the two demo recipes shrunk to a few steps on the tiny corpus; the
real budget and targets are checked by running `make demo`, never here.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from squeezer import cli
from squeezer import demo as demo_module
from squeezer.cli import main
from squeezer.data.manifests import load_cuts
from squeezer.demo import DEMO_RECIPES, DemoSettings, ModelResult, _recipe, train_model, voice_group
from squeezer.demo_report import comparison_table, group_table, verdict, write_report
from squeezer.plots import plot_runs
from squeezer.training.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def _cut(engine: str | None, accent: str | None) -> SimpleNamespace:
    custom = {k: v for k, v in {"engine": engine, "accent": accent}.items() if v is not None}
    return SimpleNamespace(supervisions=[SimpleNamespace(custom=custom)])


def test_voice_group_names_what_is_unseen():
    train_accents = {"en-us", "en-gb"}
    assert voice_group(_cut("flite", "en-us"), train_accents) == "flite (unseen engine)"
    assert voice_group(_cut("espeak-ng", "en-sc"), train_accents) == "espeak-ng, unseen accent"
    assert voice_group(_cut("espeak-ng", "en-us"), train_accents) == "espeak-ng, unseen variant"
    assert voice_group(_cut(None, None), train_accents) == "other"


def _result(name: str, gflops: float, wer: float, cer: float, steps: int = 100) -> ModelResult:
    return ModelResult(
        name=name, params=2_870_000, gflops_30s=gflops, encoder_audio_s_per_s=500.0,
        steps=steps, train_minutes=9.5,
        rates={"greedy": {"wer": wer, "cer": cer}, "beam": {"wer": wer - 0.01, "cer": cer}},
        groups={"flite (unseen engine)": {"wer": wer, "cer": cer + 0.1, "utterances": 40}},
    )  # fmt: skip


def test_comparison_and_group_tables_hold_the_numbers():
    results = [_result("conformer", 11.94, 0.40, 0.12), _result("squeezeformer", 6.60, 0.35, 0.10)]
    table = comparison_table(results)
    assert "| conformer | 2.87 | 11.94 | 500 | 100 | 9.5 | 40.0 | 12.0 | 39.0 | 12.0 |" in table
    assert "| squeezeformer | 2.87 | 6.60 |" in table
    groups = group_table(results)
    assert "| flite (unseen engine) | 40 | 22.0 | 20.0 |" in groups


def test_verdict_says_whether_the_papers_claim_holds():
    wins = verdict(
        [_result("conformer", 12.0, 0.40, 0.12), _result("squeezeformer", 6.0, 0.3, 0.1)]
    )
    assert wins[0] == "conformer: test CER 12.0 % meets the 15.0 % target."
    assert "claim (lower WER at fewer FLOPs) holds" in wins[2]
    assert "0.50x the FLOPs" in wins[2] and "both after 100 steps" in wins[2]
    loses = verdict([_result("conformer", 12.0, 0.3, 0.1), _result("squeezeformer", 6.0, 0.4, 0.2)])
    assert loses[1] == "squeezeformer: test CER 20.0 % misses the 15.0 % target."
    assert "does not hold" in loses[2]
    uneven = [_result("conformer", 12.0, 0.3, 0.1, steps=90), _result("squeezeformer", 6, 0.4, 0.2)]
    assert "after 100 versus 90 steps" in verdict(uneven)[2]


def test_cli_default_recipes_are_the_demos():
    # cli.py spells them out so that `--help` does not import the training stack.
    assert cli._DEMO_RECIPES == DEMO_RECIPES


def test_demo_recipes_are_matched_and_in_the_paper_budget():
    configs = {path.stem: load_recipe(REPO / path) for path in DEMO_RECIPES}
    conformer, squeezeformer = configs["conformer"], configs["squeezeformer"]
    assert conformer.optim == squeezeformer.optim and conformer.run == squeezeformer.run
    assert conformer.data == squeezeformer.data
    assert conformer.encoder.block_layout == "conformer"
    assert squeezeformer.encoder.block_layout == "squeezeformer"
    for config in configs.values():
        encoder = demo_module.SequenceEncoder(config.encoder_config())
        params = sum(p.numel() for p in encoder.parameters())
        assert 2e6 < params < 4e6  # issue #6: about 2-4 M parameters each


def test_recipe_takes_the_demos_corpus_budget_and_overrides(tmp_path):
    settings = DemoSettings(
        corpus=tmp_path, steps=7, minutes=2.5, overrides=("optim.peak_lr=1e-3",)
    )
    config = _recipe(settings, REPO / "configs/demo/squeezeformer.yaml")
    assert config.data.train == str(tmp_path.resolve() / "train.jsonl.gz")
    assert config.run.max_steps == 7 and config.run.max_minutes == 2.5
    assert config.optim.peak_lr == 1e-3


def test_train_model_reuses_a_finished_run_and_refuses_another_recipe(tmp_path, monkeypatch):
    config = load_recipe(REPO / "configs/demo/squeezeformer.yaml")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    config.to_yaml(run / "config.yaml")
    (run / "model" / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(demo_module, "train", lambda *a, **k: pytest.fail("must not train"))
    assert train_model(config, run) == run / "model"
    other = load_recipe(REPO / "configs/demo/squeezeformer.yaml", ["optim.peak_lr=1e-3"])
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
        str(_tiny_recipe(REPO / path, tmp_path / path.name)) for path in DEMO_RECIPES
    ]  # named conformer.yaml and squeezeformer.yaml, as the run folders will be
    out = tmp_path / "results"
    argv = ["demo", "--recipes", *recipes, "--corpus", str(corpus), "--size", "tiny",
            "--out", str(out), "--beam", "2", "--show", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("REF: ") == 2 and printed.count("HYP: ") == 2
    assert "| conformer |" in printed and "| squeezeformer |" in printed
    assert "The paper's claim (lower WER at fewer FLOPs)" in printed

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
    for name in ("results.md", "curves.png", "curves_time.png", "wer_vs_gflops.png"):
        assert (out / name).stat().st_size > 0
    assert "| squeezeformer |" in (out / "results.md").read_text()

    # A second run reuses both finished models (and the corpus) instead of training again.
    monkeypatch.setattr(demo_module, "train", lambda *a, **k: pytest.fail("must not train"))
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
    report = write_report(tmp_path / "out", runs, [], "squeezer demo --beam 0")
    text = report.read_text()
    assert "Command: `squeezer demo --beam 0`" in text
    assert "| 30.0 | 10.0 | - | - |" in text  # greedy only: the beam columns say so
    with pytest.raises(ValueError, match="x='epoch'"):
        plot_runs([tmp_path / "conformer"], tmp_path / "bad.png", x="epoch")  # type: ignore[arg-type]
