"""Small sequence datasets written as users write them: .npy files and a JSONL manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FEATURES = 5
CLASSES = "abc"


def write_split(
    root: Path, task: str, split: str, count: int, seed: int, pair: bool = False
) -> Path:
    """`root/<task>_<split>.jsonl` over `count` sequences of 12-40 positions.

    classify: the class shifts feature 0 by 2 standard deviations (separable); regress: the
    targets are running sums of features 1 and 2, one unknown (NaN); ctc: "a" or "ab" by the
    same shift; value: the mean of feature 0 and the spread of feature 1. With `pair`, a (T, T)
    matrix per sequence.
    """
    rng = np.random.default_rng(seed)
    folder = root / "seq"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        T, label = int(rng.integers(12, 40)), int(rng.integers(0, len(CLASSES)))
        x = rng.normal(size=(T, FEATURES)).astype(np.float32)
        x[:, 0] += 2 * label
        stem = f"{split}{i}"
        np.save(folder / f"{stem}.npy", x)
        line = {"features": f"seq/{stem}.npy", "id": stem}
        if task == "classify":
            line["label"] = CLASSES[label]
        elif task == "ctc":
            line["text"] = "ab"[: 1 + label % 2]
        elif task == "value":
            line["value"] = [float(x[:, 0].mean()), float(x[:, 1].std())]
        else:
            y = np.cumsum(x[:, 1:3], axis=0).astype(np.float32)
            y[0, 1] = np.nan
            np.save(folder / f"{stem}_t.npy", y)
            line["targets"] = f"seq/{stem}_t.npy"
        if pair:
            np.save(folder / f"{stem}_p.npy", rng.normal(size=(T, T)).astype(np.float32))
            line["pair"] = f"seq/{stem}_p.npy"
        lines.append(line)
    path = root / f"{task}_{split}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


ENCODER = dict(d_model=32, num_layers=4, num_heads=2, conv_kernel_size=5, time_reduce_idx=1,
               time_recover_idx=3, dropout=0.0, attention_dropout=0.0)  # fmt: skip


def write_recipe(root: Path, task: str, steps: int = 6, pair: bool = False, **sections) -> Path:
    """A recipe for `task` over `write_split`'s train and dev splits (written here)."""
    write_split(root, task, "train", 48, seed=0, pair=pair)
    write_split(root, task, "dev", 12, seed=1, pair=pair)
    encoder = dict(ENCODER, subsampling="none" if task != "ctc" else "depthwise")
    if task == "ctc":
        encoder["subsampling_factor"] = 2
    recipe = {
        "task": task,
        "encoder": encoder,
        "head": {"pair_hidden": 4, "pair_kernel": 3},
        "data": {"train": f"{task}_train.jsonl", "dev": f"{task}_dev.jsonl", "max_positions": 256},
        "optim": {"peak_lr": 3e-3, "warmup_steps": 5},
        "run": {"max_steps": steps, "checkpoint_every": 3, "log_every": 1, "epochs": 100},
    }
    for name, values in sections.items():
        recipe[name] = {**recipe.get(name, {}), **values}
    path = root / f"{task}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(recipe))
    return path
