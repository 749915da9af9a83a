"""What the verb modules share: the logger, report publishing, model loading for inference."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from squeezer.files import write_text_atomically

log = logging.getLogger("squeezer")

Verb = Callable[[argparse.Namespace], int]
# squeezer.demo.DEMO_RECIPES, spelled out so that `--help` does not import the training stack
DEMO_RECIPES = ("demo/conformer", "demo/squeezeformer")
# --backend of the verbs that run a model: PyTorch, or an export in ONNX Runtime
BACKEND_OPTIONS = dict(
    choices=["torch", "onnx", "onnx-int8", "tflite"], default="torch",
    help="torch: a model directory or .nemo file; onnx, onnx-int8: an export folder "
         "(squeezer export), run in ONNX Runtime; tflite: a sequence model's export in LiteRT",
)  # fmt: skip


def command_line(verb: str) -> str:
    """The command as typed, for reports that say how they were produced."""
    return "squeezer " + shlex.join(sys.argv[1:]) if sys.argv[1:] else f"squeezer {verb}"


def run_label(path: Path) -> str:
    """A model's name in a report: a run's model/ folder is named by its run."""
    return (path.parent if path.name == "model" else path).name


def publish(report: str, out: Path | None, section: str) -> None:
    """Print a benchmark report, and write it as `section` of `out` when given."""
    print(report)
    if out:
        write_report_section(out, section, report)
        log.info("wrote the %s section of %s", section, out)


def write_report_section(path: Path, name: str, text: str) -> None:
    """Replace (or append) the section `name` of a markdown report, leaving the others alone.

    Several commands share docs/benchmarks.md; each owns the text between its two markers.
    The file is replaced atomically, so an interrupted run never leaves half a report.
    """
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if start in old and end in old:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        new = before + block + ("\n" + after if after else "")  # one blank line, as written
    else:
        new = old.rstrip("\n") + "\n\n" + block
    write_text_atomically(path, new)


def load_for_inference(args: argparse.Namespace):
    """The model behind MODEL for --backend: PyTorch (a directory or .nemo) or ONNX Runtime."""
    if args.backend == "torch":
        from squeezer.loading import load_model

        return load_model(args.model, device=args.device)
    from squeezer.onnx_model import load_onnx_model

    if args.backend == "tflite":
        raise ValueError("--backend tflite runs sequence models; speech models: onnx, onnx-int8")
    if args.device != "cpu":
        raise ValueError(f"--backend {args.backend} runs on the CPU, not --device {args.device}")
    return load_onnx_model(args.model, int8=args.backend == "onnx-int8")


def run_training(args: argparse.Namespace, fit: Callable[[], Path]) -> int:
    """Run `fit` (a training run) for `squeezer train`: print the model directory, or after a
    preemption (SIGTERM/SIGUSR1, checkpoint written) the command that resumes it. Under
    torchrun only rank 0 speaks."""
    import os

    from squeezer.training.preemption import Preempted

    main_rank = os.environ.get("RANK", "0") == "0"
    try:
        model_dir = fit()
    except Preempted as stop:
        if main_rank:
            again = ["squeezer", "train", str(args.recipe), "--out", str(args.out), "--resume"]
            again += [item for override in args.set for item in ("--set", override)]
            print(f"squeezer train: {stop.signal_name}: stopped at step {stop.step} after "
                  f"writing {stop.checkpoint}; resume with: {shlex.join(again)}",
                  file=sys.stderr)  # fmt: skip
        return 0
    if main_rank:
        print(model_dir)
    return 0
