"""Fine-tuning (`squeezer train --init`): the NeMo fixture models on the tiny synthetic corpus.

CPU, no network. Every run takes a few optimiser steps on eight utterances; the NeMo fixtures
are small random-weight models, so a few steps lower their loss clearly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from lhotse import CutSet
from lhotse.utils import fastcopy

from squeezer.cli import main
from squeezer.data.dataset import AsrDataset
from squeezer.data.manifests import load_cuts, save_cuts
from squeezer.evaluate import evaluate
from squeezer.features import LogMelFrontend
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.structured import to_mapping
from squeezer.text import CharTokenizer, normalize_text
from squeezer.training import Trainer
from squeezer.training.metrics import read_metrics
from squeezer.training.recipe import (
    FinetuneConfig,
    TrainConfig,
    load_recipe,
)
from tests.conftest import first_utterances
from tests.training.test_loop import recipe

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nemo"
BPE, CHAR = FIXTURES / "squeezeformer_unet_bpe.nemo", FIXTURES / "squeezeformer_char.nemo"
# FastConformer's 8x subsampling leaves too few frames for its tiny BPE vocabulary on this
# corpus: a test below checks that it says so.
TRAINABLE = ["squeezeformer_unet_bpe", "squeezeformer_char", "conformer_striding_bpe"]


@pytest.fixture(scope="module")
def subset(corpus, tmp_path_factory) -> Path:
    return first_utterances(corpus, 8, tmp_path_factory.mktemp("subset") / "train8.jsonl.gz")


@pytest.fixture(scope="module")
def unknown_text(subset, tmp_path_factory) -> Path:
    """The subset with a character no fixture vocabulary holds ('ß') in one transcript."""
    cuts = list(load_cuts(subset))
    supervision = cuts[0].supervisions[0]
    cuts[0] = fastcopy(cuts[0], supervisions=[fastcopy(supervision, text="die straße")])
    path = tmp_path_factory.mktemp("unknown") / "train8.jsonl.gz"
    save_cuts(CutSet.from_cuts(cuts), path)
    return path


def finetune_config(train: Path, init: Path, steps: int, **finetune) -> TrainConfig:
    """A fine-tuning recipe in Python: test_train's, without model, encoder or features (the
    init model's), in smaller batches and with a short warm-up."""
    config = recipe(train, steps, checkpoint_every=100)
    return replace(
        config, encoder=None, features=None,
        data=replace(config.data, max_batch_seconds=15),
        optim=replace(config.optim, warmup_steps=2),
        run=replace(config.run, epochs=10_000, log_every=1),
        finetune=FinetuneConfig(init=str(init), **finetune),
    )  # fmt: skip


def write_recipe(path: Path, train: Path, steps: int, **sections) -> Path:
    """A recipe file as a user writes one for --init: data, optim, run and `sections`."""
    config = finetune_config(train, BPE, steps)
    values = {key: to_mapping(config)[key] for key in ("spec_augment", "data", "optim", "run")}
    path.write_text(yaml.safe_dump({**values, **sections}, sort_keys=False))
    return path


def ctc_loss(model: AsrModel, cuts: CutSet) -> float:
    """Mean CTC loss per token over `cuts` in one batch, eval mode, with the model's tokenizer."""
    batch = AsrDataset(LogMelFrontend(model.frontend.config), model.tokenizer.encode)[cuts]
    model.eval()
    with torch.no_grad():
        log_probs, lengths = model(batch.features, batch.feature_lengths)
    targets, target_lengths = batch.targets, batch.target_lengths
    return float(F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths))


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The CLI's error for `argv`: exit status 2 and exactly one line on stderr."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("name", TRAINABLE)
def test_finetuned_nemo_model_keeps_its_frontend_learns_and_transcribes(
    name, subset, tmp_path, capsys
):
    nemo = FIXTURES / f"{name}.nemo"
    init, cuts = load_model(nemo), load_cuts(subset)
    recipe, run = write_recipe(tmp_path / "r.yaml", subset, steps=6), tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run), "--init", str(nemo)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "model")
    tuned = load_model(run / "model")
    assert tuned.frontend.config == init.frontend.config and tuned.frontend.config.nemo_compat
    assert tuned.config == init.config and tuned.tokenizer.tokens() == init.tokenizer.tokens()
    assert tuned.tokenizer.decode_style == "nemo"  # NeMo's text, as before fine-tuning
    before, after = ctc_loss(init, cuts), ctc_loss(tuned, cuts)
    assert after < 0.9 * before, (before, after)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["finetune"]["init"] == str(nemo.resolve())
    assert saved["features"] == to_mapping(init.frontend.config)
    assert saved["encoder"] == to_mapping(init.config)
    evaluation = evaluate(tuned, cuts)
    assert len(evaluation.rows) == 8 and evaluation.rates["greedy"].cer >= 0
    audio = Path(cuts[0].recording.sources[0].source)
    assert main(["transcribe", str(run / "model"), str(audio)]) == 0
    expected = next(row["hypothesis"] for row in evaluation.rows if row["id"] == cuts[0].id)
    path, tab, text = capsys.readouterr().out.rstrip("\n").partition("\t")
    assert (path, tab, normalize_text(text)) == (str(audio), "\t", expected)


def test_text_longer_than_the_encoder_frames_is_a_one_line_error(subset, tmp_path, capsys):
    # Every transcript four times over: more tokens than the 80 ms frames of its audio.
    cuts = [
        fastcopy(
            cut, supervisions=[fastcopy(s, text=" ".join([s.text] * 4)) for s in cut.supervisions]
        )
        for cut in load_cuts(subset)
    ]
    long_text = save_cuts(CutSet.from_cuts(cuts), tmp_path / "long.jsonl.gz")
    nemo = FIXTURES / "fastconformer_dw8_bpe.nemo"
    recipe = write_recipe(tmp_path / "r.yaml", long_text, steps=1)
    run = tmp_path / "run"
    error = error_line(capsys, ["train", str(recipe), "--out", str(run), "--init", str(nemo)])
    assert str(long_text) in error
    assert "more tokens than encoder frames (CTC cannot align): 8" in error


def test_new_vocabulary_puts_a_fresh_head_on_the_loaded_encoder(unknown_text, tmp_path):
    config = finetune_config(unknown_text, BPE, steps=8, vocabulary="new")
    trainer = Trainer(config, tmp_path / "run", resume=False)
    init, model = load_model(BPE), trainer.model
    assert isinstance(trainer.tokenizer, CharTokenizer) and "ß" in trainer.tokenizer.tokens()
    assert model.vocab_size == trainer.tokenizer.vocab_size != init.vocab_size
    assert model.ctc_head.linear.out_features == trainer.tokenizer.vocab_size + 1
    loaded = init.encoder.state_dict()
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, loaded[key]), key
    model.tokenizer = trainer.tokenizer
    before = ctc_loss(model, load_cuts(unknown_text))
    trainer.fit()
    tuned = load_model(tmp_path / "run" / "model")
    assert tuned.vocab_size == trainer.tokenizer.vocab_size
    assert tuned.tokenizer.tokens() == trainer.tokenizer.tokens()
    assert tuned.frontend.config == init.frontend.config
    assert ctc_loss(tuned, load_cuts(unknown_text)) < 0.9 * before


def test_kept_vocabulary_refuses_text_it_cannot_encode(unknown_text, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", unknown_text, steps=1)
    for nemo in (BPE, CHAR):
        error = error_line(capsys, ["train", str(recipe), "--out", str(tmp_path / "run"),
                                    "--init", str(nemo)])  # fmt: skip
        assert "1 of 8 transcripts" in error and "'ß'" in error and str(nemo.resolve()) in error
        assert "finetune.vocabulary: new" in error


def test_frozen_encoder_is_bit_identical_then_trains_after_resume(subset, tmp_path, capsys):
    # Weight decay on, so AdamW's decoupled decay would show on any parameter it touched.
    config = finetune_config(subset, CHAR, steps=3, freeze="encoder", freeze_steps=3)
    config = replace(config, optim=replace(config.optim, weight_decay=0.1))
    run = tmp_path / "run"
    trainer = Trainer(config, run, resume=False)
    start = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    assert any("running_mean" in key for key in start)  # BatchNorm statistics are checked too
    head = trainer.model.ctc_head.linear.weight.detach().clone()
    init = load_model(CHAR)  # the vocabulary is kept: every weight starts as the init's
    assert all(torch.equal(v, start[k]) for k, v in init.encoder.state_dict().items())
    assert torch.equal(head, init.ctc_head.linear.weight)
    assert not trainer.model.encoder.training and trainer.model.ctc_head.training
    trainer.fit()
    assert trainer.state.step == 3
    for key, value in trainer.model.encoder.state_dict().items():
        assert torch.equal(value, start[key]), key
    assert not any(p in trainer.optimizer.state for p in trainer.model.encoder.parameters())
    assert not torch.equal(trainer.model.ctc_head.linear.weight, head)
    assert trainer.model.encoder.training  # released after step 3
    # --resume without --init: the run's checkpoint says how it was fine-tuned.
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(to_mapping(replace(config, finetune=FinetuneConfig()))))
    argv = ["train", str(recipe), "--out", str(run), "--resume", "--set", "run.max_steps=5"]
    assert main(argv) == 0
    capsys.readouterr()
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == [1, 2, 3, 4, 5]
    saved = yaml.safe_load((run / "config.yaml").read_text())  # the resumed run's record
    assert saved["finetune"]["init"] == str(CHAR.resolve())
    assert saved["finetune"]["freeze"] == "encoder" and saved["finetune"]["freeze_steps"] == 3
    assert saved["features"] == to_mapping(trainer.model.frontend.config)
    tuned = load_model(run / "model")
    changed = {k for k, v in tuned.encoder.state_dict().items() if not torch.equal(v, start[k])}
    assert any(k.endswith("weight") for k in changed) and any("running" in k for k in changed)
    assert tuned.frontend.config == load_model(CHAR).frontend.config
    assert tuned.tokenizer.tokens() == trainer.tokenizer.tokens()


def test_kept_norm_statistics_stay_while_the_weights_train(subset, tmp_path):
    """finetune.norm_statistics: keep holds every BatchNorm's running statistics at the loaded
    model's for the whole run (the default updates them, as training from scratch does)."""
    config = finetune_config(subset, CHAR, steps=3, norm_statistics="keep")
    trainer = Trainer(config, tmp_path / "run", resume=False)
    start = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    statistics = [k for k in start if "running" in k]
    assert statistics
    trainer.fit()
    after = trainer.model.encoder.state_dict()
    assert all(torch.equal(after[k], start[k]) for k in statistics)
    assert any(not torch.equal(after[k], start[k]) for k in start if k.endswith("weight"))
    updated = Trainer(finetune_config(subset, CHAR, steps=3), tmp_path / "default", resume=False)
    updated.fit()
    assert any(not torch.equal(updated.model.encoder.state_dict()[k], start[k])
               for k in statistics)  # fmt: skip


def test_init_with_resume_continues_and_never_reapplies_the_init(subset, tmp_path, capsys):
    recipe, run = write_recipe(tmp_path / "r.yaml", subset, steps=2), tmp_path / "run"
    start = ["train", str(recipe), "--out", str(run), "--init", str(BPE)]
    assert main([*start, "--resume"]) == 0  # nothing to resume yet: the run starts from BPE
    assert main([*start, "--resume", "--set", "run.max_steps=3"]) == 0
    capsys.readouterr()
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == [1, 2, 3]
    error = error_line(capsys, [*start[:-1], str(CHAR), "--resume"])
    assert str(CHAR.resolve()) in error and str(BPE.resolve()) in error
    error = error_line(capsys, [*start, "--resume", "--set", "finetune.vocabulary=new"])
    assert "finetune.vocabulary='new'" in error


def test_recipe_sections_that_disagree_with_the_init_model_are_one_line_errors(
    subset, tmp_path, capsys
):
    init = load_model(BPE)
    run = ["--out", str(tmp_path / "run"), "--init", str(BPE)]
    encoder = to_mapping(init.config) | {"d_model": 144}
    recipe = write_recipe(tmp_path / "r1.yaml", subset, steps=1, encoder=encoder)
    error = error_line(capsys, ["train", str(recipe), *run])
    assert f"recipe encoder.d_model=144 disagrees with {BPE.resolve()} (48)" in error
    features = to_mapping(init.frontend.config) | {"nemo_compat": False}
    recipe = write_recipe(tmp_path / "r2.yaml", subset, steps=1, features=features)
    assert "features.nemo_compat=False" in error_line(capsys, ["train", str(recipe), *run])
    recipe = write_recipe(tmp_path / "r3.yaml", subset, steps=1, model="squeezeformer-xs")
    error = error_line(capsys, ["train", str(recipe), *run])
    assert "model=squeezeformer-xs: encoder.d_model=144" in error
    recipe = write_recipe(tmp_path / "r4.yaml", subset, steps=1, encoder=to_mapping(init.config))
    assert load_recipe(recipe, init=BPE).encoder == init.config  # an agreeing section is fine


def test_bad_init_paths_and_settings_are_one_line_errors(subset, tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", subset, steps=1)
    train = ["train", str(recipe), "--out", str(tmp_path / "run")]
    missing = tmp_path / "missing.nemo"
    assert f"--init {missing}: no such" in error_line(capsys, [*train, "--init", str(missing)])
    junk = tmp_path / "junk.nemo"
    junk.write_bytes(b"not a tar file")
    assert str(junk) in error_line(capsys, [*train, "--init", str(junk)])
    folder = tmp_path / "folder"
    folder.mkdir()
    assert str(folder) in error_line(capsys, [*train, "--init", str(folder)])
    (folder / "model").mkdir()  # a training run's folder instead of its model/
    (folder / "model" / "model.safetensors").write_bytes(b"")
    assert f"its model is {folder / 'model'}" in error_line(capsys, [*train, "--init", str(folder)])
    frozen = write_recipe(tmp_path / "f.yaml", subset, steps=1,
                          finetune={"freeze": "encoder", "freeze_steps": 2})  # fmt: skip
    error = error_line(capsys, ["train", str(frozen), "--out", str(tmp_path / "run")])
    assert "finetune.freeze='encoder' needs a model to start from" in error
    for bad, named in (({"freeze": "encoder"}, "finetune.freeze_steps >= 1"),
                       ({"freez": "encoder"}, "finetune.freez"),
                       ({"vocabulary": "old"}, "finetune.vocabulary")):  # fmt: skip
        path = write_recipe(tmp_path / "bad.yaml", subset, steps=1, finetune=bad)
        assert named in error_line(capsys, ["train", str(path), "--out", str(tmp_path / "x")])


def test_init_does_not_apply_to_a_resumed_run_trained_from_scratch(subset, tmp_path, capsys):
    init = load_model(CHAR)
    scratch = replace(finetune_config(subset, CHAR, steps=1), finetune=FinetuneConfig(),
                      model=None, encoder=init.config, features=init.frontend.config)  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(to_mapping(scratch)))
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run)]) == 0
    capsys.readouterr()
    error = error_line(capsys, ["train", str(recipe), "--out", str(run), "--resume",
                                "--init", str(CHAR)])  # fmt: skip
    assert "trained from scratch" in error and "checkpoint-000000001.pt" in error


def test_two_gloo_processes_freeze_release_and_stay_in_sync(subset, tmp_path):
    # A new vocabulary: rank 0 trains the tokenizer, and DDP gives every rank rank 0's new head.
    finetune = {"vocabulary": "new", "freeze": "encoder", "freeze_steps": 2}
    recipe = write_recipe(tmp_path / "r.yaml", subset, steps=4, finetune=finetune,
                          tokenizer={"kind": "char"})  # fmt: skip
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "squeezer", "train", str(recipe), "--out", str(run), "--init", str(BPE),
        "--set", "data.max_batch_seconds=12", "--set", "run.device=cpu",
        "--set", "run.checkpoint_every=2", "--set", "run.keep_last=2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    sync = [r for r in read_metrics(run) if "rank_weight_max_abs_diff" in r][-1]
    assert sync["ranks"] == 2 and sync["step"] == 4 and sync["rank_weight_max_abs_diff"] == 0.0
    init = load_model(BPE).encoder.state_dict()
    frozen = torch.load(run / "checkpoints" / "checkpoint-000000002.pt", weights_only=True)
    final = torch.load(run / "checkpoints" / "checkpoint-000000004.pt", weights_only=True)
    encoder = [key for key in frozen["model"] if key.startswith("encoder.")]
    assert all(torch.equal(frozen["model"][k], init[k.removeprefix("encoder.")]) for k in encoder)
    assert not all(torch.equal(final["model"][k], frozen["model"][k]) for k in encoder)
