"""The demo verb: Conformer against Squeezeformer on the embedded corpus (`make demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezer.cli.common import DEMO_RECIPES, command_line


def _add_demo(verbs: argparse._SubParsersAction) -> None:
    demo = verbs.add_parser("demo", help="train and compare Conformer and Squeezeformer")
    demo.add_argument("--recipes", nargs="+", default=list(DEMO_RECIPES),
                      help="recipe files or packaged names (default: %(default)s)")  # fmt: skip
    demo.add_argument("--corpus", type=Path, default=Path("data/synth-demo"))
    demo.add_argument("--size", choices=["tiny", "demo", "large"], default="demo")
    demo.add_argument("--out", type=Path, default=Path("results/demo"), help="results folder")
    demo.add_argument("--steps", type=int, help="optimiser steps per model (overrides recipes)")
    demo.add_argument("--seeds", type=int, default=1, help="trainings per model, other seeds")
    demo.add_argument("--parallel", type=int,
                      help="trainings at once (default: as many as runs and cores)")  # fmt: skip
    demo.add_argument("--minutes", type=float, help="wall-clock cap per model (overrides)")
    demo.add_argument("--beam", type=int, default=8, help="beam width (0: greedy only)")
    demo.add_argument("--show", type=int, default=4, help="test files to transcribe")
    demo.add_argument("--jobs", type=int, default=None, help="synthesis processes")
    demo.add_argument("--gpu", action="store_true", help="train on CUDA in bf16")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a value of every recipe (repeatable)")  # fmt: skip
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    """Conformer versus Squeezeformer: corpus, training, scoring, report (`make demo`)."""
    from squeezer.demo import DemoSettings, run_demo, write_demo_results
    from squeezer.demo_report import comparison_table, group_table, pairs_table, verdict

    settings = DemoSettings(
        recipes=tuple(args.recipes), corpus=args.corpus, size=args.size, out=args.out,
        steps=args.steps, minutes=args.minutes, seeds=args.seeds, parallel=args.parallel,
        beam=args.beam, show=args.show, jobs=args.jobs, overrides=tuple(args.set),
        require_cuda=args.gpu,
    )  # fmt: skip
    outcome = run_demo(settings)
    print()
    for example in outcome.examples:
        print(f"{Path(example['file']).name} ({example['group']})")
        print(f"  REF: {example['reference']}\n  HYP: {example['hypothesis']}")
    print("\n" + comparison_table(outcome.results) + "\n\n" + group_table(outcome.results))
    if outcome.comparisons:
        print("\n" + pairs_table(outcome.comparisons))
    print("\n" + "\n".join(verdict(outcome.results, outcome.comparisons)))
    report = write_demo_results(settings, outcome, command_line("demo"))
    print(f"\nwrote {report} (and results.json and plots beside it)")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the demo verbs, each with its handler."""
    _add_demo(verbs)
