"""Fine-tune a demo model on a few minutes of a voice group it never heard; CER before and after.

    python tools/finetune_unseen.py results/demo/runs/squeezeformer/model \
        --corpus data/synth-demo --group "flite, unseen voice" --steps 150 --out runs/ft-flite

The group's test utterances are split by sentence into an adaptation half (fine-tuned on) and
a held-out half (scored); the other groups' test utterances show what was forgotten. Prints a
markdown table (README, Fine-tuning) and writes it to OUT/results.md.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import yaml
from lhotse import CutSet

from squeezer.data.manifests import save_cuts
from squeezer.demo import _test_groups
from squeezer.evaluate import evaluate
from squeezer.loading import load_model
from squeezer.training import train
from squeezer.training.recipe import load_recipe


def _half(text: str) -> bool:
    """A stable, sentence-level split: the same sentence is always on the same side."""
    return hashlib.sha1(text.encode()).digest()[0] % 2 == 0


def _cer_by_group(model_dir: Path, sets: dict[str, CutSet]) -> dict[str, float]:
    model = load_model(model_dir)
    return {name: evaluate(model, cuts).rates["greedy"].cer for name, cuts in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--corpus", type=Path, default=Path("data/synth-demo"))
    parser.add_argument("--group", default="flite, unseen voice")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--peak-lr", type=float, default=3e-4)
    parser.add_argument("--freeze-steps", type=int, default=0)
    parser.add_argument("--norm-statistics", choices=["update", "keep"], default="keep")
    parser.add_argument("--out", type=Path, default=Path("runs/ft-unseen"))
    args = parser.parse_args()

    test, groups = _test_groups(args.corpus)
    chosen = test.filter(lambda cut: groups[cut.id] == args.group)
    if len(chosen) == 0:
        raise SystemExit(
            f"no test utterance in group {args.group!r}: {sorted(set(groups.values()))}"
        )
    adapt = chosen.filter(lambda cut: _half(cut.supervisions[0].text))
    held = chosen.filter(lambda cut: not _half(cut.supervisions[0].text))
    sets = {f"{args.group}: held-out sentences": held}
    for name in sorted(set(groups.values()) - {args.group}):
        sets[name] = test.filter(lambda cut, name=name: groups[cut.id] == name)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = save_cuts(adapt, args.out / "adapt.jsonl.gz")
    minutes_of_audio = sum(cut.duration for cut in adapt) / 60

    recipe = {
        "finetune": {"vocabulary": "keep", "freeze": "encoder" if args.freeze_steps else "none",
                     "freeze_steps": args.freeze_steps, "norm_statistics": args.norm_statistics},
        "data": {"train": str(manifest.resolve()), "max_batch_seconds": 40, "num_workers": 1},
        "optim": {"peak_lr": args.peak_lr, "warmup_steps": max(args.steps // 10, 1),
                  "hold_steps": args.steps, "weight_decay": 1e-3},
        "run": {"epochs": 100_000, "max_steps": args.steps, "checkpoint_every": args.steps,
                "average_last": 1, "log_every": 10},
    }  # fmt: skip
    recipe_path = args.out / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))

    before = _cer_by_group(args.model, sets)
    start = time.perf_counter()
    model_dir = train(load_recipe(recipe_path, init=args.model), args.out / "run")
    minutes = (time.perf_counter() - start) / 60
    after = _cer_by_group(model_dir, sets)

    lines = [
        f"Fine-tuning `{args.model}` on {len(adapt)} utterances ({minutes_of_audio:.1f} min of "
        f"audio) of {args.group}: {args.steps} steps, peak LR {args.peak_lr:g}, BatchNorm "
        f"statistics {args.norm_statistics}, "
        f"{minutes:.1f} min on this machine.",
        "",
        "| test set | utterances | CER before % | CER after % |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {len(sets[name])} | {100 * before[name]:.2f} | {100 * after[name]:.2f} |"
              for name in sets]  # fmt: skip
    report = "\n".join(lines) + "\n"
    print(report)
    (args.out / "results.md").write_text(report)


if __name__ == "__main__":
    main()
