"""The `squeezer` command: thin argparse verbs that call the library.

Each group of verbs lives in its own module, which registers every verb's parser right beside
its handler: `speech` (corpora, training, evaluation, transcription), `sequences` (non-audio
tasks: prediction, and the sequence side of train, evaluate and export), `deployment` (export and
its benchmarks), `analysis` (model zoo, FLOPs, redundancy, throughput) and `demo`. Only this
package and the training loop talk to the console.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from squeezer import __version__
from squeezer.cli import analysis, demo, deployment, sequences, speech
from squeezer.cli.common import DEMO_RECIPES, write_report_section
from squeezer.extras import missing_extra_message

__all__ = ["main", "write_report_section"]

_DEMO_RECIPES = DEMO_RECIPES  # the name tests compare with squeezer.demo.DEMO_RECIPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="squeezer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"squeezer {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for group in (speech, sequences, deployment, analysis, demo):
        group.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except ModuleNotFoundError as error:
        message = missing_extra_message(error)
        if message is None:
            raise
        print(f"squeezer {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"squeezer {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`squeezer recipes | head`): stop quietly, as a shell tool does.
        # stdout is pointed at /dev/null so that Python's flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
