"""The measurements of docs/sequences.md for sequence tasks from files, through the CLI as a
user runs it: data written as files, `squeezer train`, `evaluate`, `export`, `predict`.

    python tools/sequence_benchmarks.py pair --out docs/sequences/pair_cli.json
    python tools/sequence_benchmarks.py pen --out docs/sequences/pen_ctc.json
    python tools/sequence_benchmarks.py uea --out docs/sequences/uea.json
    .venv-tflite/bin/python tools/sequence_benchmarks.py export --out docs/sequences/export.json

Data and runs go under --work (/tmp/seqbench by default). `export` reads the models the other
three trained (run them first) and needs the tflite extra (`make test-tflite` builds that
venv). Each writes its JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from squeezer.cli import main as squeezer
from squeezer.sequences import pen_task
from squeezer.sequences.pair_task import pair_task_batch
from squeezer.sequences.ts_format import read_ts


def _run(*argv: str) -> None:
    code = squeezer([*argv])
    if code != 0:
        raise SystemExit(f"squeezer {' '.join(argv)} exited {code}")


def _metrics(model: Path, manifest: Path) -> dict:
    out = model.parent / "eval" / manifest.stem
    _run("evaluate", str(model), str(manifest), "--out", str(out))
    return json.loads((out / "summary.json").read_text())["metrics"]


def _recipe(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _train(recipe: Path, run: Path, reuse: bool) -> tuple[Path, float]:
    """The run's model and its training minutes. With `reuse` (--reuse) a finished run is not
    trained again: the minutes are those its metrics.jsonl recorded, which leave out start-up
    and dev scoring."""
    if reuse and (run / "model").is_dir():
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return run / "model", max(r.get("time_s", 0) for r in records) / 60
    start = time.perf_counter()
    _run("train", str(recipe), "--out", str(run))
    return run / "model", (time.perf_counter() - start) / 60


# -- pair: the known-answer task of docs/sequences.md, from files --------------------------------


def _pair_split(root: Path, split: str, count: int, lengths: tuple[int, int], seed: int) -> None:
    """`split.jsonl` with pair matrices and `split-nopair.jsonl` with the same sequences."""
    generator = torch.Generator().manual_seed(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    with_pair, without = [], []
    for index in range(count):
        batch = pair_task_batch(1, *lengths, generator)
        n = int(batch.lengths[0])
        stem = f"{split}/{index:05d}"
        np.save(root / f"{stem}.npy", batch.features[0, :n].numpy())
        np.save(root / f"{stem}_t.npy", batch.targets[0, :n].numpy())
        np.save(root / f"{stem}_p.npy", batch.pair[0, :n, :n].numpy())
        line = {"id": f"{split}{index}", "features": f"{stem}.npy", "targets": f"{stem}_t.npy"}
        without.append(line)
        with_pair.append({**line, "pair": f"{stem}_p.npy"})
    for name, lines in ((split, with_pair), (f"{split}-nopair", without)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def pair(args: argparse.Namespace) -> dict:
    root = args.work / "pair"
    if not (root / "test-long.jsonl").is_file():
        _pair_split(root, "train", 4000, (20, 200), seed=1)
        _pair_split(root, "dev", 128, (20, 200), seed=2)
        _pair_split(root, "test", 256, (20, 200), seed=3)
        _pair_split(root, "test-long", 128, (200, 450), seed=4)
    results = []
    for use_pair in (False, True):
        suffix = "" if use_pair else "-nopair"
        recipe = _recipe(root / f"recipe{suffix}.yaml", {
            "task": "regress",
            "encoder": dict(d_model=64, num_layers=4, num_heads=4, conv_kernel_size=17,
                            subsampling="none", time_reduce_idx=None, time_recover_idx=None,
                            position="relative", dropout=0.0, attention_dropout=0.0),
            "head": dict(pair_hidden=16, pair_kernel=7, pair_lr_scale=20.0),
            "data": {"train": f"train{suffix}.jsonl", "dev": f"dev{suffix}.jsonl",
                     "max_positions": 16 * 200, "normalize": False},
            "optim": dict(peak_lr=2e-3, warmup_steps=max(args.steps // 10, 1),
                          schedule="cosine", min_lr=0.0, weight_decay=0.01),
            "run": dict(max_steps=args.steps, checkpoint_every=args.steps, epochs=1000,
                        log_every=50),
        })  # fmt: skip
        model, minutes = _train(recipe, args.work / "runs" / f"pair{suffix}", args.reuse)
        row = {"pair": use_pair, "steps": args.steps, "train_minutes": round(minutes, 2)}
        for split in ("test", "test-long"):
            row[split] = _metrics(model, root / f"{split}{suffix}.jsonl")
        results.append(row)
    return {"task": "pair", "command": " ".join(sys.argv), "results": results}


# -- pen: CTC on generated pen trajectories, writers disjoint between splits ---------------------


def pen(args: argparse.Namespace) -> dict:
    root = args.work / "pen"
    if not (root / "test.jsonl").is_file():
        pen_task.write_split(root, "train", 4000, range(0, 60), seed=1)
        pen_task.write_split(root, "dev", 300, range(100, 110), seed=2)
        pen_task.write_split(root, "test", 500, range(200, 220), seed=3)
    recipe = _recipe(root / "recipe.yaml", {
        "task": "ctc",
        "encoder": dict(d_model=96, num_layers=6, num_heads=4, conv_kernel_size=15,
                        subsampling="depthwise", subsampling_factor=2, time_reduce_idx=2,
                        time_recover_idx=5, dropout=0.1, attention_dropout=0.1),
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "max_positions": 8192},
        "augment": dict(stretch=[0.85, 1.15], time_masks=1, time_mask_fraction=0.05),
        "optim": dict(peak_lr=2e-3, warmup_steps=max(args.steps // 10, 1), schedule="cosine",
                      min_lr=1e-5, weight_decay=0.01),
        "run": dict(max_steps=args.steps, checkpoint_every=max(args.steps // 4, 1), epochs=1000,
                    log_every=50),
    })  # fmt: skip
    model, minutes = _train(recipe, args.work / "runs" / "pen", args.reuse)
    return {"task": "pen", "command": " ".join(sys.argv), "steps": args.steps,
            "train_minutes": round(minutes, 2),
            "test": _metrics(model, root / "test.jsonl"),
            "dev": _metrics(model, root / "dev.jsonl")}  # fmt: skip


# -- uea: the UCR/UEA sets the aeon and sktime wheels ship ----------------------------------------

UEA = ["JapaneseVowels", "BasicMotions", "ACSF1", "ArrowHead", "GunPoint", "ItalyPowerDemand",
       "OSULeaf", "PickupGestureWiimoteZ", "PLAID"]  # fmt: skip
TSER = ["Tecator", "Covid3Month", "CardanoSentiment"]  # regression: task "value", RMSE


def _ts_files(wheels: Path, name: str) -> tuple[str, str, zipfile.ZipFile]:
    for wheel in sorted(wheels.glob("*.whl")):
        archive = zipfile.ZipFile(wheel)
        names = archive.namelist()
        train = [n for n in names if n.endswith(f"/{name}/{name}_TRAIN.ts")]
        test = [n for n in names if n.endswith(f"/{name}/{name}_TEST.ts")]
        if train and test:
            return train[0], test[0], archive
    raise SystemExit(f"{name}: no _TRAIN.ts/_TEST.ts in the wheels of {wheels}")


def _uea_manifests(wheels: Path, root: Path, name: str, seed: int) -> None:
    """train.jsonl (all of TRAIN), fit.jsonl + valid.jsonl (a stratified 80/20 of TRAIN),
    test.jsonl (TEST)."""
    train_name, test_name, archive = _ts_files(wheels, name)
    root.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, member in (("train", train_name), ("test", test_name)):
        path = root / f"{split}.ts"
        path.write_bytes(archive.read(member))
        _, series = read_ts(path)
        (root / split).mkdir(exist_ok=True)
        lines = []
        for index, item in enumerate(series):
            stem = f"{split}/{index:05d}.npy"
            np.save(root / stem, item.values)
            answer = {"label": item.label} if item.label is not None else {"value": item.target}
            lines.append({"id": f"{split}{index}", "features": stem, **answer})
        splits[split] = lines
    rng = np.random.default_rng(seed)
    fit, valid = [], []
    regression = "value" in splits["train"][0]
    # strata: the classes, or (regression) one stratum, split at random
    strata = [None] if regression else sorted({line["label"] for line in splits["train"]})
    for label in strata:
        members = [line for line in splits["train"] if regression or line["label"] == label]
        rng.shuffle(members)
        cut = max(1, round(0.2 * len(members))) if len(members) > 1 else 0
        valid += members[:cut]
        fit += members[cut:]
    for split, lines in (("train", splits["train"]), ("fit", fit), ("valid", valid),
                         ("test", splits["test"])):  # fmt: skip
        (root / f"{split}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


SMALL = dict(d_model=64, num_layers=4, num_heads=4, conv_kernel_size=9, time_reduce_idx=1,
             time_recover_idx=3)  # fmt: skip
CANDIDATES = {  # chosen between on the validation split, per dataset
    "augmented": dict(SMALL, augment=True),  # a time mask and noise
    "plain": dict(SMALL, augment=False),
}  # fmt: skip


def _uea_recipe(root: Path, train: str, encoder: dict, steps: int, longest: int, task: str,
                seed: int = 0) -> Path:  # fmt: skip
    """A recipe over `train`.jsonl: the encoder reads series of up to 512 positions as they are
    and longer ones through the 4x depthwise-separable stem. No mixup, peak LR 1e-3: with mixup
    or 2e-3 the 50-series sets stayed at chance in some runs (docs/sequences.md)."""
    stride = 1 if longest <= 512 else 4
    encoder = dict(encoder)
    augment = encoder.pop("augment")
    return _recipe(root / f"recipe-{train}-{seed}.yaml", {
        "task": task,
        "encoder": dict(encoder, subsampling="none" if stride == 1 else "depthwise",
                        subsampling_factor=4, dropout=0.1, attention_dropout=0.1),
        "head": {"pooling": "mean"},
        "data": {"train": f"{train}.jsonl", "max_positions": 16 * max(longest, 32),
                 "nan_to": 0.0},
        "augment": dict(time_masks=1, time_mask_fraction=0.1, noise_std=0.05) if augment else {},
        "optim": dict(peak_lr=1e-3, warmup_steps=max(steps // 10, 1), schedule="cosine",
                      min_lr=1e-5, weight_decay=0.05),
        "run": dict(max_steps=steps, checkpoint_every=steps, epochs=100000, log_every=100,
                    seed=seed),
    })  # fmt: skip


def _ensemble(models: list[Path], manifest: Path, task: str) -> tuple[dict, list[dict]]:
    """The ensemble's test metrics (class probabilities, or values, averaged over the models,
    as InceptionTime averages its five networks) and each model's own."""
    import csv

    answers = {}
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        answers[record["id"]] = record["label"] if task == "classify" else record["value"]
    tables = []
    for model in models:
        out = model.parent / "test_predictions.csv"
        _run("predict", str(model), str(manifest), "--out", str(out))
        with out.open() as file:
            tables.append({row["id"]: row for row in csv.DictReader(file)})
    columns = [c for c in next(iter(tables[0].values())) if c.startswith(("p_", "value_"))]

    def metrics(chosen: list[dict]) -> dict:
        errors, right = [], 0
        for sequence_id, answer in answers.items():
            mean = {c: statistics.fmean(float(t[sequence_id][c]) for t in chosen) for c in columns}
            if task == "classify":
                right += max(mean, key=mean.get) == f"p_{answer}"
            else:
                errors.append(mean["value_0"] - float(answer))
        if task == "classify":
            return {"accuracy": right / len(answers)}
        return {"rmse": float(np.sqrt(np.mean(np.square(errors)))),
                "mae": float(np.mean(np.abs(errors)))}  # fmt: skip

    return metrics(tables), [metrics([table]) for table in tables]


def uea(args: argparse.Namespace) -> dict:
    """Per dataset: each candidate trained on 80 % of TRAIN and scored on the other 20 %; the
    best (accuracy, or RMSE for regression) trained again on all of TRAIN with --seeds seeds,
    their predictions on TEST averaged (and each seed's own score reported)."""
    report = {"task": "uea", "command": " ".join(sys.argv), "steps": args.steps, "results": []}
    results = report["results"]
    for name in args.datasets or UEA + TSER:
        root = args.work / "uea" / name
        if not (root / "test.jsonl").is_file():
            _uea_manifests(args.wheels, root, name, seed=0)
        task = "value" if name in TSER else "classify"
        metric = "rmse" if task == "value" else "accuracy"
        sign = -1 if task == "value" else 1  # higher is better after the sign
        longest = max(np.load(p, mmap_mode="r").shape[0] for p in (root / "train").glob("*.npy"))
        start = time.perf_counter()
        runs = args.work / "runs" / "uea2" / name
        chosen = {}
        for candidate, encoder in CANDIDATES.items():
            if args.candidates and candidate not in args.candidates:
                continue
            recipe = _uea_recipe(root, "fit", encoder, args.steps, longest, task)
            model, _ = _train(recipe, runs / candidate, args.reuse)
            chosen[candidate] = _metrics(model, root / "valid.jsonl")[metric]
        best = max(chosen, key=lambda c: sign * chosen[c])
        models = []
        for seed in range(args.seeds):
            recipe = _uea_recipe(root, "train", CANDIDATES[best], args.steps, longest, task, seed)
            models.append(_train(recipe, runs / f"final-{best}-seed{seed}", args.reuse)[0])
        ensemble, single = _ensemble(models, root / "test.jsonl", task)
        results.append({"dataset": name, "task": task, f"valid_{metric}": chosen,
                        "chosen": best, "seeds": args.seeds, f"test_{metric}": ensemble[metric],
                        "test": ensemble, f"test_{metric}_per_seed": [m[metric] for m in single],
                        "longest": longest,
                        "minutes": round((time.perf_counter() - start) / 60, 2)})  # fmt: skip
        print(json.dumps(results[-1]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)  # each dataset as it ends
        args.out.write_text(json.dumps({**report, "partial": True}, indent=1) + "\n")
    return report


# -- export: sizes, batch-1 latency and parity of the trained models -----------------------------


def export(args: argparse.Namespace) -> dict:
    from squeezer.sequences.backends import load_backend
    from squeezer.sequences.evaluate import greedy_tokens, run_model
    from squeezer.sequences.manifest import read_sequences

    runs = args.work / "runs"
    cases = [("pair", runs / "pair" / "model", args.work / "pair" / "test.jsonl"),
             ("pen", runs / "pen" / "model", args.work / "pen" / "test.jsonl")]  # fmt: skip
    uea_runs = sorted((args.work / "runs" / "uea2" / "JapaneseVowels").glob("final-*/model"))
    if uea_runs:
        cases.append(("JapaneseVowels", uea_runs[0],
                      args.work / "uea" / "JapaneseVowels" / "test.jsonl"))  # fmt: skip
    rows = []
    for name, model, manifest in cases:
        if not model.is_dir():
            print(f"{name}: no trained model at {model}, skipped", file=sys.stderr)
            continue
        task = yaml.safe_load((model / "config.yaml").read_text())["task"]
        records = read_sequences(manifest, task)
        longest = max(np.load(r.features, mmap_mode="r").shape[0] for r in records)
        folder = model.parent / "export"
        _run("export", str(model), "--out", str(folder), "--tflite", "--max-length", str(longest))
        reference = {}
        row = {"task": name, "max_length": longest, "sequences": len(records)}
        for backend in ("torch", "onnx", "tflite"):
            loaded = load_backend(model if backend == "torch" else folder, backend, threads=1)
            outputs, worst, times = {}, 0.0, []
            for record in records[: args.latency_sequences]:
                for _ in range(3):
                    start = time.perf_counter()
                    (output,) = list(run_model(loaded.run, loaded.task, loaded.assets, [record]))
                    times.append(time.perf_counter() - start)
            for output in run_model(loaded.run, loaded.task, loaded.assets, records):
                for i, sequence_id in enumerate(output.batch.ids):
                    n = int(output.lengths[i])
                    value = output.values[i]
                    outputs[sequence_id] = value if value.dim() == 1 else value[:n]
            if backend == "torch":
                reference = outputs
            else:
                worst = max(float((outputs[k] - reference[k]).abs().max()) for k in reference)
            if loaded.task == "ctc":  # the greedy transcripts, compared as text
                texts = {k: loaded.assets.tokenizer.decode(greedy_tokens(v[None], torch.tensor(
                    [v.size(0)]))[0]) for k, v in outputs.items()}  # fmt: skip
                if backend == "torch":
                    reference_texts = texts
                row.setdefault("texts_differing", {})[backend] = sum(
                    texts[k] != reference_texts[k] for k in texts
                )
            graph = {"torch": model / "model.safetensors", "onnx": folder / "model.onnx",
                     "tflite": folder / "model.tflite"}[backend]  # fmt: skip
            row[backend] = {"file_mb": round(graph.stat().st_size / 2**20, 2),
                            "latency_ms_median": round(1000 * statistics.median(times), 2),
                            "latency_ms_max": round(1000 * max(times), 2),
                            "max_abs_diff_vs_torch": worst}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"task": "export", "command": " ".join(sys.argv), "threads": 1, "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["pair", "pen", "uea", "export"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/seqbench"))
    parser.add_argument("--out", type=Path, required=True, help="JSON results")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--wheels", type=Path, default=Path("/tmp/aeon"),
                        help="folder with the aeon 1.6.0 and sktime 1.2.0 wheels "
                             "(pip download --no-deps aeon==1.6.0 sktime==1.2.0)")  # fmt: skip
    parser.add_argument("--datasets", nargs="*", help="uea: these only")
    parser.add_argument("--candidates", nargs="*", help="uea: these candidates only")
    parser.add_argument("--seeds", type=int, default=3, help="uea: final models averaged")
    parser.add_argument("--latency-sequences", type=int, default=20)
    parser.add_argument("--reuse", action="store_true",
                        help="score the runs under --work, not train them again")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(2)
    result = {"pair": pair, "pen": pen, "uea": uea, "export": export}[args.what](args)
    result["date"] = time.strftime("%Y-%m-%d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
