"""Sequence-task verbs: `predict`, and the sequence side of `train`, `evaluate` and `export`.

`squeezer train`, `evaluate` and `export` are shared with speech: their handlers (in `speech`
and `deployment`) hand a sequence recipe (one with `task:`) or a sequence model directory to
the functions here, so a user types the same verb for either kind of model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from squeezer.cli.common import log, run_training

SEQUENCE_BACKENDS = ("torch", "onnx", "tflite")


def is_sequence_model(path: Path) -> bool:
    """Whether `path` is a sequence model directory or export folder (not a speech model)."""
    config = Path(path) / "config.yaml"
    if not config.is_file():
        return False
    from squeezer.sequences.model import SEQUENCE_FORMAT
    from squeezer.structured import read_yaml

    values = read_yaml(config)
    return isinstance(values, dict) and values.get("format") == SEQUENCE_FORMAT


def train(args: argparse.Namespace) -> int:
    """`squeezer train` for a recipe with `task:`."""
    from squeezer.sequences.recipe import load_sequence_recipe
    from squeezer.sequences.training import train_sequences

    if args.init is not None:
        raise ValueError(f"{args.recipe}: --init is for speech models; a sequence task trains "
                         "from scratch")  # fmt: skip
    config = load_sequence_recipe(args.recipe, args.set)
    return run_training(args, lambda: train_sequences(config, args.out, resume=args.resume))


def _backend(args: argparse.Namespace):
    from squeezer.sequences.backends import load_backend

    if args.backend not in SEQUENCE_BACKENDS:
        raise ValueError(f"--backend {args.backend} is for speech models; a sequence model runs "
                         f"in {', '.join(SEQUENCE_BACKENDS)}")  # fmt: skip
    return load_backend(args.model, args.backend)


def evaluate(args: argparse.Namespace) -> int:
    """`squeezer evaluate` for a sequence model: the task's metrics, written to summary.json."""
    from squeezer.sequences.manifest import read_sequences
    from squeezer.sequences.predict import predict

    backend = _backend(args)
    records = read_sequences(args.manifest, backend.task)
    _, summary = predict(backend, records, progress=sys.stderr.isatty())
    summary = {"model": str(args.model), "backend": args.backend, "manifest": str(args.manifest),
               **summary}  # fmt: skip
    for name, value in summary["metrics"].items():
        print(f"{name:>24}: {value:.6g}" if isinstance(value, float) else f"{name:>24}: {value}")
    out = args.out or args.model / "eval" / Path(args.manifest).name.split(".")[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %s", out / "summary.json")
    return 0


def export(args: argparse.Namespace) -> int:
    """`squeezer export` for a sequence model: ONNX, and TFLite with --tflite."""
    from squeezer.sequences.export import export_onnx, export_tflite
    from squeezer.sequences.model import load_sequence_model

    model, assets = load_sequence_model(args.model)
    graphs = [export_onnx(model, assets, args.out, args.max_length)]
    if args.tflite:
        graphs.append(export_tflite(model, assets, args.out, args.max_length))
    for graph in graphs:
        print(f"{graph}\t{graph.stat().st_size / 2**20:.2f} MB")
    return 0


def _add_predict(verbs: argparse._SubParsersAction) -> None:
    predict = verbs.add_parser("predict", help="a sequence model's predictions for a manifest")
    predict.add_argument("model", type=Path, help="sequence model directory or export folder")
    predict.add_argument("manifest", type=Path, help="sequences (.jsonl or .parquet)")
    predict.add_argument("--out", type=Path, required=True, help="predictions .csv or .parquet")
    predict.add_argument("--backend", choices=SEQUENCE_BACKENDS, default="torch",
                         help="torch: a model directory; onnx, tflite: an export "
                              "folder")  # fmt: skip
    predict.add_argument("--progress", action="store_true", help="a progress bar")
    predict.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> int:
    """Predictions (one row per sequence, or per position for regress) and summary.json."""
    from squeezer.sequences.manifest import read_sequences
    from squeezer.sequences.predict import predict, write_table

    if args.out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out {args.out}: predictions are written as .csv or .parquet")
    backend = _backend(args)
    records = read_sequences(args.manifest, backend.task, answers=False)
    rows, summary = predict(backend, records, progress=args.progress or sys.stderr.isatty())
    write_table(rows, args.out)
    summary = {"model": str(args.model), "backend": args.backend, "manifest": str(args.manifest),
               "predictions": str(args.out), **summary}  # fmt: skip
    path = args.out.with_name(args.out.stem + ".summary.json")
    path.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %s (%d rows) and %s", args.out, len(rows), path)
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the sequence verbs, each with its handler."""
    _add_predict(verbs)
