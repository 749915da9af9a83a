"""Sequence tasks trained, evaluated and predicted from files through the CLI, as a user runs
them; the speech loop's guarantees (exact resume, counted skips) hold for them too."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from squeezer.cli import main
from tests.sequences.data import write_recipe


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", ["classify", "regress", "ctc", "value"])
def test_each_task_trains_evaluates_and_predicts_from_the_cli(task, tmp_path, capsys):
    recipe = write_recipe(tmp_path, task)
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run)]) == 0
    model = run / "model"
    vocabulary = {"classify": "labels.json", "ctc": "characters.json"}.get(task)
    assert (model / "feature_stats.json").is_file()
    assert vocabulary is None or (model / vocabulary).is_file()
    dev = [m for m in _metrics(run) if any(k.startswith("dev_") for k in m)]
    assert dev and dev[-1]["step"] == 6
    manifest = tmp_path / f"{task}_dev.jsonl"
    assert main(["evaluate", str(model), str(manifest)]) == 0
    summary = json.loads((model / "eval" / f"{task}_dev" / "summary.json").read_text())
    expected = {"classify": "accuracy", "regress": "mae_1", "ctc": "normalized_levenshtein",
                "value": "rmse"}  # fmt: skip
    assert expected[task] in summary["metrics"] and summary["sequences"] == 12
    out = tmp_path / "preds.csv"
    assert main(["predict", str(model), str(manifest), "--out", str(out)]) == 0
    with out.open() as file:
        rows = list(csv.DictReader(file))
    lengths = [np.load(tmp_path / "seq" / f"dev{i}.npy").shape[0] for i in range(12)]
    assert len(rows) == (sum(lengths) if task == "regress" else 12)
    assert rows[0]["id"] == "dev0"  # manifest order, whatever the batching
    predicted = json.loads((tmp_path / "preds.summary.json").read_text())
    assert predicted["metrics"] == summary["metrics"]


def test_classification_learns_the_separable_task(tmp_path):
    """Chance is 1/3; the classes differ by 2 standard deviations in one feature."""
    recipe = write_recipe(tmp_path, "classify", steps=40, run={"checkpoint_every": 40})
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    dev = [m for m in _metrics(tmp_path / "run") if "dev_accuracy" in m]
    assert dev[-1]["dev_accuracy"] >= 0.75


def test_values_are_learned_in_the_datas_units(tmp_path):
    """The model answers in the targets' own scale (mean 2 x class, spread 1): after training
    its RMSE on the class mean is well under the targets' spread (predicting the mean)."""
    recipe = write_recipe(tmp_path, "value", steps=60, run={"checkpoint_every": 60})
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    dev = [m for m in _metrics(tmp_path / "run") if "dev_rmse" in m][-1]
    values = [json.loads(line)["value"][0] for line in
              (tmp_path / "value_dev.jsonl").read_text().splitlines()]  # fmt: skip
    assert dev["dev_mae_0"] < 0.5 * np.std(values)


def _final_checkpoint(run):
    state = torch.load(sorted((run / "checkpoints").glob("*.pt"))[-1], weights_only=False)
    return state["model"]


def test_resume_continues_exactly_with_augmentation(tmp_path):
    """Stopped after 3 steps and resumed, the run ends with the weights of one run straight
    through: the batches, the augmentations drawn per (seed, epoch, sequence), the optimiser."""
    augment = {"stretch": [0.8, 1.2], "time_masks": 1, "feature_masks": 1, "noise_std": 0.1,
               "mixup_alpha": 0.4, "mirror_columns": [1], "mirror_center": 0.0}  # fmt: skip
    recipe = write_recipe(tmp_path, "classify", steps=6, augment=augment,
                          encoder={"dropout": 0.1})  # fmt: skip
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["train", str(recipe), "--out", str(whole)]) == 0
    assert main(["train", str(recipe), "--out", str(parts), "--set", "run.max_steps=3"]) == 0
    assert main(["train", str(recipe), "--out", str(parts), "--resume"]) == 0
    a, b = _final_checkpoint(whole), _final_checkpoint(parts)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    weights = load_file(str(parts / "model" / "model.safetensors"))
    assert set(weights) == set(a)


def test_an_unusable_sequence_is_skipped_and_counted(tmp_path):
    recipe = write_recipe(tmp_path, "regress", steps=4)
    bad = np.load(tmp_path / "seq" / "train3.npy")
    bad[2, 1] = np.nan
    np.save(tmp_path / "seq" / "train3.npy", bad)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    summary = [m for m in _metrics(tmp_path / "run") if m.get("summary") == "data"][-1]
    reasons = summary["skipped_cuts"]
    assert any("NaN or inf" in reason for reason in reasons), reasons


def test_nan_features_become_the_recipes_value(tmp_path):
    recipe = write_recipe(tmp_path, "regress", steps=2, data={"nan_to": 0.0})
    bad = np.load(tmp_path / "seq" / "train3.npy")
    bad[2, 1] = np.nan
    np.save(tmp_path / "seq" / "train3.npy", bad)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    summary = [m for m in _metrics(tmp_path / "run") if m.get("summary") == "data"][-1]
    assert summary["skipped_cuts"] == {}


def test_pair_input_trains_and_predicts(tmp_path):
    recipe = write_recipe(tmp_path, "regress", steps=3, pair=True)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert any(name.startswith("pair_bias.") for name in weights)
    out = tmp_path / "p.parquet"
    pytest.importorskip("pyarrow")
    manifest = tmp_path / "regress_dev.jsonl"
    assert main(["predict", str(tmp_path / "run" / "model"), str(manifest), "--out", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "regress", "encoder": {"subsampling": "depthwise"}}, "subsampling=none"),
        ({"augment": {"mixup_alpha": 0.2}, "task": "regress"}, "mixup_alpha is for task=classify"),
        ({"augment": {"stretch": [1.2, 0.8]}}, "augment.stretch"),
        ({"data": {"max_positions": 0}}, "data.max_positions=0"),
        ({"task": "translate"}, "translate"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_setting(change, message, tmp_path, capsys):
    recipe = write_recipe(tmp_path, "classify")
    import yaml

    values = yaml.safe_load(recipe.read_text())
    for key, value in change.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    recipe.write_text(yaml.safe_dump(values))
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(recipe) in err[0]


def test_predict_refuses_a_label_the_model_never_saw(tmp_path, capsys):
    recipe = write_recipe(tmp_path, "classify", steps=1)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    manifest = tmp_path / "classify_dev.jsonl"
    lines = manifest.read_text().splitlines()
    lines[4] = lines[4].replace('"label": "', '"label": "zebra-')
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["evaluate", str(tmp_path / "run" / "model"), str(manifest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{manifest}:5" in err and "was not in training" in err


def test_two_gloo_processes_train_a_sequence_task_in_sync(tmp_path):
    """torchrun: each rank takes its share of the length batches, and both end with the same
    weights, having taken the same steps (the speech loop's check, in metrics.jsonl)."""
    import os
    import subprocess
    import sys

    recipe = write_recipe(tmp_path, "classify", steps=4, run={"checkpoint_every": 100})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "squeezer", "train", str(recipe), "--out", str(tmp_path / "run"),
        "--set", "run.device=cpu",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    sync = [m for m in _metrics(tmp_path / "run") if "rank_weight_max_abs_diff" in m]
    assert sync and sync[-1]["ranks"] == 2 and sync[-1]["step"] == 4
    assert sync[-1]["rank_weight_max_abs_diff"] == 0.0


SPEECH_STACK = ("lhotse", "soundfile", "soxr", "sentencepiece", "jiwer", "pyctcdecode")


def test_sequence_tasks_need_no_speech_package(tmp_path):
    """`pip install squeezer[sequences]` trains, evaluates and predicts: in a process where
    every speech-only package fails to import, the CLI runs the whole flow."""
    import subprocess
    import sys

    recipe = write_recipe(tmp_path, "classify", steps=2)
    model, dev = tmp_path / "run" / "model", tmp_path / "classify_dev.jsonl"
    script = (
        "import sys\n"
        f"for name in {SPEECH_STACK!r}: sys.modules[name] = None  # import raises ImportError\n"
        "from squeezer.cli import main\n"
        f"assert main(['train', {str(recipe)!r}, '--out', {str(tmp_path / 'run')!r}]) == 0\n"
        f"assert main(['evaluate', {str(model)!r}, {str(dev)!r}]) == 0\n"
        f"assert main(['predict', {str(model)!r}, {str(dev)!r}, '--out', "
        f"{str(tmp_path / 'p.csv')!r}]) == 0\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "p.csv").is_file()
