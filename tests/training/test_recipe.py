from __future__ import annotations

from pathlib import Path

import pytest

from squeezer.sequences.recipe import is_sequence_recipe, load_sequence_recipe
from squeezer.training.recipe import load_recipe, packaged_recipes

RECIPES = sorted(p for p in packaged_recipes().values() if not is_sequence_recipe(p))
SEQUENCE_RECIPES = sorted(p for p in packaged_recipes().values() if is_sequence_recipe(p))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_load(path):
    config = load_recipe(path)
    assert config.encoder_config().d_model > 0
    assert Path(config.data.train).is_absolute()


@pytest.mark.parametrize("path", SEQUENCE_RECIPES, ids=[p.stem for p in SEQUENCE_RECIPES])
def test_shipped_sequence_recipes_load(path):
    config = load_sequence_recipe(path)
    assert config.encoder_config(7).input_dim == 7
    assert Path(config.data.train).is_absolute() and config.task == path.stem


def test_overrides_and_errors(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model: squeezeformer-xs\ndata:\n  train: train.jsonl.gz\n")
    config = load_recipe(path, ["optim.peak_lr=1e-4", "run.max_steps=5"])
    assert config.optim.peak_lr == 1e-4 and config.run.max_steps == 5
    assert config.data.train == str(tmp_path / "train.jsonl.gz")
    with pytest.raises(ValueError, match="squeezeformer-q"):
        load_recipe(path, ["model=squeezeformer-q"])
    path.write_text("model: squeezeformer-xs\n")
    with pytest.raises(ValueError, match=r"data\.train"):
        load_recipe(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_recipe(tmp_path / "missing.yaml")
