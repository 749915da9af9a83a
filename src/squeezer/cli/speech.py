"""Speech verbs: corpora and manifests, training, evaluation, transcription, curves."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from squeezer.cli import sequences
from squeezer.cli.common import BACKEND_OPTIONS, load_for_inference, log, run_training


def _add_prepare(verbs: argparse._SubParsersAction) -> None:
    prepare = verbs.add_parser("prepare", help="import a corpus into a Lhotse manifest")
    prepare.add_argument("layout", choices=["librispeech", "nemo", "folder"])
    prepare.add_argument("source", type=Path, help="corpus folder or NeMo manifest")
    prepare.add_argument("--out", type=Path, required=True, help="manifest to write (.jsonl.gz)")
    prepare.set_defaults(handler=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    """Import a corpus on disk into a Lhotse manifest."""
    from squeezer.data.importers import import_folder, import_librispeech, import_nemo_manifest
    from squeezer.data.manifests import save_cuts

    importers = {
        "librispeech": import_librispeech,
        "nemo": import_nemo_manifest,
        "folder": import_folder,
    }
    report = importers[args.layout](args.source)
    save_cuts(report.cuts, args.out)
    hours = sum(cut.duration for cut in report.cuts) / 3600
    log.info("%s (%.2f h) -> %s", report.summary(), hours, args.out)
    return 0


def _add_corpus(verbs: argparse._SubParsersAction) -> None:
    corpus = verbs.add_parser("corpus", help="the offline synthetic speech corpus")
    corpus_verbs = corpus.add_subparsers(dest="corpus_verb", metavar="VERB", required=True)
    synth = corpus_verbs.add_parser("synth", help="synthesise it with espeak-ng (and flite)")
    synth.add_argument("--out", type=Path, required=True, help="corpus folder")
    synth.add_argument("--size", choices=["tiny", "demo", "large"], default="demo")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
    corpus.set_defaults(handler=_corpus)


def _corpus(args: argparse.Namespace) -> int:
    """Build the offline synthetic speech corpus."""
    from squeezer.data.corpus import synthesize_corpus

    summary = synthesize_corpus(
        args.out, size=args.size, seed=args.seed, jobs=args.jobs, progress=True
    )
    if summary.reused:
        log.info("corpus already complete in %s", args.out)
    print(summary.to_markdown())
    return 0


def _add_train(verbs: argparse._SubParsersAction) -> None:
    train = verbs.add_parser("train", help="train a CTC model from a recipe YAML")
    train.add_argument(
        "recipe", help="a recipe YAML file, or a packaged recipe's name (`squeezer recipes`)"
    )
    train.add_argument("--out", type=Path, required=True, help="run directory")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. optim.peak_lr=1e-3 (repeatable)",
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument(
        "--init",
        type=Path,
        metavar="PATH",
        help="fine-tune: start from this model directory or .nemo file (see the recipe's "
        "finetune section); applied only when the run starts",
    )
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    """Train a CTC model from a recipe, from scratch or fine-tuning a model (--init)."""
    from squeezer.sequences.recipe import is_sequence_recipe

    if is_sequence_recipe(args.recipe):
        return sequences.train(args)
    from squeezer.training import train  # the speech stack: after the dispatch
    from squeezer.training.recipe import load_recipe

    config = load_recipe(args.recipe, args.set, init=args.init)
    return run_training(args, lambda: train(config, args.out, resume=args.resume))


def _add_recipes(verbs: argparse._SubParsersAction) -> None:
    recipes = verbs.add_parser("recipes", help="list the packaged recipes, or print one")
    recipes.add_argument("name", nargs="?", help="print this recipe (to copy and edit)")
    recipes.set_defaults(handler=_recipes)


def _recipes(args: argparse.Namespace) -> int:
    """The recipes inside the package, each with its first comment line; or one printed."""
    from squeezer.training.recipe import find_recipe, packaged_recipes

    if args.name is not None:
        print(find_recipe(args.name).read_text(), end="")
        return 0
    for name, path in packaged_recipes().items():
        first = path.read_text().splitlines()[0].lstrip("# ")
        print(f"{name:<30} {first}")
    return 0


def _add_import_nemo(verbs: argparse._SubParsersAction) -> None:
    nemo = verbs.add_parser("import-nemo", help="convert a NeMo .nemo CTC model to a directory")
    nemo.add_argument("nemo", type=Path, help="the .nemo file (Squeezeformer or Conformer CTC)")
    nemo.add_argument("--out", type=Path, required=True, help="model directory to write")
    nemo.set_defaults(handler=_import_nemo)


def _import_nemo(args: argparse.Namespace) -> int:
    """Convert a NeMo .nemo CTC checkpoint into a squeezer model directory."""
    from squeezer.nemo import import_nemo

    print(import_nemo(args.nemo, args.out))
    return 0


def _add_evaluate(verbs: argparse._SubParsersAction) -> None:
    evaluate = verbs.add_parser("evaluate", help="WER/CER of a model on a manifest (or a "
                                "sequence model's metrics)")  # fmt: skip
    evaluate.add_argument("model", type=Path, help="model directory, .nemo file or export")
    evaluate.add_argument("--backend", **BACKEND_OPTIONS)
    evaluate.add_argument("manifest", type=Path,
                          help="Lhotse manifest (.jsonl.gz), or sequences (.jsonl, "
                               ".parquet)")  # fmt: skip
    evaluate.add_argument("--beam", type=int, default=0, help="beam width (0: greedy only)")
    evaluate.add_argument("--lm", type=Path, help="KenLM model (ARPA or binary) for the beam")
    evaluate.add_argument("--batch-seconds", type=float, default=60.0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--out", type=Path, help="folder for hypotheses and summary")
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    """WER/CER of a model on a manifest, greedy and beam search."""
    if sequences.is_sequence_model(args.model):
        return sequences.evaluate(args)
    from squeezer.data.manifests import load_cuts
    from squeezer.evaluate import evaluate, write_evaluation

    model = load_for_inference(args)
    evaluation = evaluate(model, load_cuts(args.manifest), args.beam, args.lm, args.batch_seconds)
    summary = evaluation.summary()
    for name, rates in evaluation.rates.items():
        print(f"{name:>6}: WER {100 * rates.wer:6.2f} %  CER {100 * rates.cer:6.2f} %  "
              f"({rates.utterances} utterances)")  # fmt: skip
    print(f"real-time factor {summary['real_time_factor']}")
    for item in evaluation.unreadable:  # left out of the scores, so say which
        print(f"unreadable, not scored: {item['path']}: {item['error']}", file=sys.stderr)
    if evaluation.unreadable:
        print(f"{len(evaluation.unreadable)} utterances unreadable (listed in summary.json)")
    home = args.model if args.model.is_dir() else args.model.with_suffix("")  # a .nemo file
    out = args.out or home / "eval" / Path(args.manifest).name.split(".")[0]
    log.info("wrote %s", write_evaluation(evaluation, out))
    return 0


def _add_transcribe(verbs: argparse._SubParsersAction) -> None:
    transcribe = verbs.add_parser("transcribe", help="transcribe audio files, with word times")
    transcribe.add_argument("model", type=Path, help="model directory, .nemo file or export")
    transcribe.add_argument("--backend", **BACKEND_OPTIONS)
    transcribe.add_argument("audio", type=Path, nargs="+",
                            help="audio files, folders, list files (.txt: one path a line) or "
                                 "manifests (.jsonl.gz)")  # fmt: skip
    transcribe.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt",
                            help="txt: text; json: text, words and tokens with times; srt, vtt: "
                                 "subtitles")  # fmt: skip
    transcribe.add_argument("--json", dest="format", action="store_const", const="json",
                            help="the same as --format json")  # fmt: skip
    transcribe.add_argument("--timestamps", action="store_true",
                            help="word and token start, end and confidence (json)")  # fmt: skip
    transcribe.add_argument("--out", type=Path,
                            help="write OUT/<name>.<format> per file and OUT/summary.json "
                                 "(default: print to stdout)")  # fmt: skip
    transcribe.add_argument("--batch-seconds", type=float, default=120.0,
                            help="audio per batch for files up to one window")  # fmt: skip
    transcribe.add_argument("--progress", action="store_true", help="a progress bar")
    transcribe.add_argument("--window", type=float, default=20.0, help="window seconds")
    transcribe.add_argument("--overlap", type=float, default=2.0, help="overlap seconds")
    transcribe.add_argument("--device", default="cpu")
    transcribe.set_defaults(handler=_transcribe)


def _transcribe(args: argparse.Namespace) -> int:
    """Text (and word times, subtitles) of audio files, folders, lists or manifests."""

    from squeezer.transcribe import summarize, transcribe
    from squeezer.transcripts import SUMMARY_FILE, collect_audio, render, write_transcripts

    paths = collect_audio(args.audio)
    if args.format in ("srt", "vtt") and len(paths) > 1 and args.out is None:
        raise ValueError(f"--format {args.format} for {len(paths)} files needs --out DIR")
    model = load_for_inference(args)
    results = transcribe(
        model, paths, timestamps=args.timestamps or args.format in ("srt", "vtt"),
        batch_seconds=args.batch_seconds, window_s=args.window, overlap_s=args.overlap,
        progress=(args.out is not None and sys.stderr.isatty()) or args.progress,
    )  # fmt: skip
    summary = summarize(results)
    if args.out is not None:
        write_transcripts(results, args.out, args.format)
        (args.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    else:
        for result in results:
            if result.error is not None:
                continue
            if args.format == "txt":
                print(f"{result.path}\t{result.text}")
            else:
                print(render(result, args.format), end="")
    for failure in summary["unreadable"]:
        log.warning("unreadable: %s: %s", failure["path"], failure["error"])
    log.info("%d files, %.3f h of audio, real-time factor %.4f, %d unreadable",
             summary["files"], summary["audio_hours"], summary["real_time_factor"],
             len(summary["unreadable"]))  # fmt: skip
    return 0 if summary["transcribed"] or not results else 1


def _add_plot(verbs: argparse._SubParsersAction) -> None:
    plot = verbs.add_parser("plot", help="training curves (loss, dev WER/CER, LR) as a PNG")
    plot.add_argument("runs", type=Path, nargs="+", help="run directories")
    plot.add_argument("--out", type=Path, help="PNG path (default: RUN/curves.png)")
    plot.add_argument("--x", choices=["step", "time_s"], default="step", help="horizontal axis")
    plot.set_defaults(handler=_plot)


def _plot(args: argparse.Namespace) -> int:
    """PNG training curves of one or more runs."""
    from squeezer.plots import plot_runs

    out = args.out or Path(args.runs[0]) / "curves.png"
    log.info("wrote %s", plot_runs(args.runs, out, x=args.x))
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the speech verbs, each with its handler."""
    _add_prepare(verbs)
    _add_corpus(verbs)
    _add_train(verbs)
    _add_recipes(verbs)
    _add_import_nemo(verbs)
    _add_evaluate(verbs)
    _add_transcribe(verbs)
    _add_plot(verbs)
