"""The `squeezer` command: thin argparse verbs that call the library.

Only this module and the training loop talk to the console.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from squeezer import EncoderConfig, __version__, list_presets
from squeezer.extras import missing_extra_message

log = logging.getLogger("squeezer")

Verb = Callable[[argparse.Namespace], int]
# squeezer.demo.DEMO_RECIPES, spelled out so that `--help` does not import the training stack
_DEMO_RECIPES = ("demo/conformer", "demo/squeezeformer")


def _command_line(verb: str) -> str:
    """The command as typed, for reports that say how they were produced."""
    return "squeezer " + shlex.join(sys.argv[1:]) if sys.argv[1:] else f"squeezer {verb}"


def _presets(args: argparse.Namespace) -> int:
    """Print the model zoo: sizes, U-Net indices and parameters with a CTC head."""
    from squeezer.model import AsrModel

    print(f"{'preset':<18} {'d_model':>7} {'blocks':>6} {'heads':>5} {'U-Net':>7} {'params':>9}")
    for name in list_presets():
        config = EncoderConfig.preset(name)
        unet = f"{config.time_reduce_idx}-{config.time_recover_idx}" if config.uses_unet else "-"
        model = AsrModel(config, vocab_size=args.vocab_size)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"{name:<18} {config.d_model:>7} {config.num_layers:>6} {config.num_heads:>5} "
            f"{unet:>7} {params:>8.2f}M"
        )
    if args.yaml:
        print(f"\n# {args.yaml}\n" + yaml.safe_dump(EncoderConfig.preset(args.yaml).to_dict()))
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Encoder throughput, ours against the PyPI `squeezeformer` package, in alternating rounds."""
    from squeezer.analysis import bench_rounds

    measurements = bench_rounds.run_rounds(
        args.presets,
        rounds=args.rounds,
        repeats=args.repeats,
        threads=args.threads,
        include_peer=not args.no_peer,
        progress=log.info,
    )
    report = bench_rounds.format_markdown(
        bench_rounds.summarise(measurements), measurements, command=_command_line("bench")
    )
    _publish(report, args.out, "encoder-throughput")
    return 0


def _bench_deploy(args: argparse.Namespace) -> int:
    """PyTorch against ONNX Runtime fp32/int8 (and sherpa-onnx end to end)."""
    from squeezer.analysis import bench_deploy

    throughput, transcription = [], []
    for name in args.models:
        model, export_dir, scratch = bench_deploy.prepare(name, args.threads)
        with scratch:
            path = Path(name)
            label = _run_label(path) if path.exists() else name
            throughput += bench_deploy.network_throughput(
                label, model, export_dir, args.rounds, args.threads
            )
            if args.manifest and path.exists():
                transcription += bench_deploy.transcription_rows(
                    label, model, export_dir, args.manifest, args.threads, args.rounds
                )
    report = bench_deploy.format_markdown(
        throughput, transcription, _command_line("bench-deploy"), args.rounds, args.threads
    )
    _publish(report, args.out, "deployment")
    return 0


def _bench_transcribe(args: argparse.Namespace) -> int:
    """Word-time accuracy on known word times; batched against one-by-one transcription."""
    import torch

    from squeezer.analysis import bench_transcribe
    from squeezer.loading import load_model
    from squeezer.transcripts import collect_audio

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    errors = bench_transcribe.boundary_errors(model)
    factors = {}
    if args.manifest:
        paths = collect_audio([args.manifest])
        factors = bench_transcribe.throughput(model, paths, args.rounds, args.batch_seconds)
    report = bench_transcribe.format_markdown(
        _run_label(Path(args.model)), errors, factors, _command_line("bench-transcribe"),
        args.rounds, args.threads,
    )  # fmt: skip
    _publish(report, args.out, "transcription")
    return 0


def _run_label(path: Path) -> str:
    """A model's name in a report: a run's model/ folder is named by its run."""
    return (path.parent if path.name == "model" else path).name


def _publish(report: str, out: Path | None, section: str) -> None:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(new)
    temporary.replace(path)


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


def _train(args: argparse.Namespace) -> int:
    """Train a CTC model from a recipe, from scratch or fine-tuning a model (--init)."""
    from squeezer.training import train
    from squeezer.training.preemption import Preempted
    from squeezer.training.recipe import load_recipe

    config = load_recipe(args.recipe, args.set, init=args.init)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, say things once
    try:
        model_dir = train(config, args.out, resume=args.resume)
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


def _import_nemo(args: argparse.Namespace) -> int:
    """Convert a NeMo .nemo CTC checkpoint into a squeezer model directory."""
    from squeezer.nemo import import_nemo

    print(import_nemo(args.nemo, args.out))
    return 0


def _load_for_inference(args: argparse.Namespace):
    """The model behind MODEL for --backend: PyTorch (a directory or .nemo) or ONNX Runtime."""
    if args.backend == "torch":
        from squeezer.loading import load_model

        return load_model(args.model, device=args.device)
    from squeezer.onnx_model import load_onnx_model

    if args.device != "cpu":
        raise ValueError(f"--backend {args.backend} runs on the CPU, not --device {args.device}")
    return load_onnx_model(args.model, int8=args.backend == "onnx-int8")


def _export(args: argparse.Namespace) -> int:
    """ONNX graph(s), tokens.txt and settings for ONNX Runtime and sherpa-onnx."""
    from squeezer.export import export_onnx
    from squeezer.loading import load_model

    result = export_onnx(load_model(args.model), args.out, int8=args.int8)
    for graph in result.graphs:
        print(f"{graph}\t{graph.stat().st_size / 2**20:.1f} MB")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """WER/CER of a model on a manifest, greedy and beam search."""
    from squeezer.data.manifests import load_cuts
    from squeezer.evaluate import evaluate, write_evaluation

    model = _load_for_inference(args)
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


def _transcribe(args: argparse.Namespace) -> int:
    """Text (and word times, subtitles) of audio files, folders, lists or manifests."""
    import json

    from squeezer.transcribe import summarize, transcribe
    from squeezer.transcripts import SUMMARY_FILE, collect_audio, render, write_transcripts

    paths = collect_audio(args.audio)
    if args.format in ("srt", "vtt") and len(paths) > 1 and args.out is None:
        raise ValueError(f"--format {args.format} for {len(paths)} files needs --out DIR")
    model = _load_for_inference(args)
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


def _plot(args: argparse.Namespace) -> int:
    """PNG training curves of one or more runs."""
    from squeezer.plots import plot_runs

    out = args.out or Path(args.runs[0]) / "curves.png"
    log.info("wrote %s", plot_runs(args.runs, out, x=args.x))
    return 0


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
    report = write_demo_results(settings, outcome, _command_line("demo"))
    print(f"\nwrote {report} (and results.json and plots beside it)")
    return 0


def _flops(args: argparse.Namespace) -> int:
    """Parameters and FLOPs per component, the ablation ladder, cost versus length."""
    import json

    import torch

    from squeezer.analysis import flops_plot, flops_report, flops_scaling, flops_table

    command = _command_line("flops")
    only_extras = (args.ladder or args.scaling) and not args.models
    measure = not args.no_measure
    reports, ladder, scaling = [], None, []
    if not only_extras:
        models = flops_report.load_models(args.models)
        reports = flops_report.flops_report(models, args.seconds, args.vocab_size, measure)
    if args.ladder:
        ladder = flops_report.ladder_report(args.seconds, args.vocab_size, measure)
    if args.scaling:
        if args.threads:
            torch.set_num_threads(args.threads)
        pair = flops_scaling.equal_width_pair(args.scaling)
        scaling = flops_scaling.length_scaling(
            pair, args.scaling_seconds, args.vocab_size, repeats=args.repeats
        )
    if args.json:
        print(json.dumps(flops_table.to_json(reports, ladder, scaling), indent=2))
    else:
        if reports:
            print(flops_table.format_table(reports, command))
            print(flops_table.format_components(reports, command))
            for report in reports if args.blocks else []:
                print(flops_table.format_blocks(report))
        if ladder is not None:
            print(flops_table.format_ladder(ladder, command))
        if scaling:
            print(flops_table.format_scaling(scaling, command))
    if args.plot:
        for path in flops_plot.plot_report(args.plot, reports, ladder, scaling):
            log.info("wrote %s", path)
    return 0


def _redundancy(args: argparse.Namespace) -> int:
    """Cosine similarity of frames k apart, per block (paper Figure 2)."""
    import json

    from squeezer.analysis.redundancy import plot_redundancy, redundancy_report

    report = redundancy_report(
        args.model,
        args.manifest,
        max_distance=args.max_distance,
        max_utterances=args.max_utterances,
        center=args.center,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_markdown())
    if args.plot:
        plot_redundancy(report, args.plot)
        log.info("wrote %s", args.plot)
    return 0


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Verb]]:
    parser = argparse.ArgumentParser(prog="squeezer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"squeezer {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    presets = verbs.add_parser("presets", help="list the model zoo with parameter counts")
    presets.add_argument("--vocab-size", type=int, default=128, help="tokens without the blank")
    presets.add_argument("--yaml", choices=list_presets(), help="also print one preset as YAML")

    bench = verbs.add_parser("bench", help="encoder throughput against the PyPI peer")
    bench.add_argument("--presets", nargs="+", default=["squeezeformer-xs", "squeezeformer-sm"])
    bench.add_argument(
        "--repeats", type=int, default=3, help="timed runs per process; the fastest counts"
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of fresh processes (peer, then ours); the report gives medians over them",
    )
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--no-peer", action="store_true", help="time squeezer only")
    bench.add_argument("--out", type=Path, help="write the markdown report here")

    deploy = verbs.add_parser("bench-deploy", help="PyTorch against ONNX Runtime and sherpa")
    deploy.add_argument("models", nargs="+", help="presets or trained model directories")
    deploy.add_argument("--manifest", type=Path, help="test split: end-to-end RTF and CER")
    deploy.add_argument("--rounds", type=int, default=5)
    deploy.add_argument("--threads", type=int, default=2)
    deploy.add_argument("--out", type=Path, help="markdown report to update")

    words = verbs.add_parser("bench-transcribe", help="word-time accuracy and batching speed")
    words.add_argument("model", help="trained model directory or .nemo file")
    words.add_argument("--manifest", type=Path, help="test split: batched against one by one")
    words.add_argument("--rounds", type=int, default=3)
    words.add_argument("--batch-seconds", type=float, default=120.0)
    words.add_argument("--threads", type=int, default=2)
    words.add_argument("--out", type=Path, help="markdown report to update")

    prepare = verbs.add_parser("prepare", help="import a corpus into a Lhotse manifest")
    prepare.add_argument("layout", choices=["librispeech", "nemo", "folder"])
    prepare.add_argument("source", type=Path, help="corpus folder or NeMo manifest")
    prepare.add_argument("--out", type=Path, required=True, help="manifest to write (.jsonl.gz)")

    corpus = verbs.add_parser("corpus", help="the offline synthetic speech corpus")
    corpus_verbs = corpus.add_subparsers(dest="corpus_verb", metavar="VERB", required=True)
    synth = corpus_verbs.add_parser("synth", help="synthesise it with espeak-ng (and flite)")
    synth.add_argument("--out", type=Path, required=True, help="corpus folder")
    synth.add_argument("--size", choices=["tiny", "demo", "large"], default="demo")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")

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

    nemo = verbs.add_parser("import-nemo", help="convert a NeMo .nemo CTC model to a directory")
    nemo.add_argument("nemo", type=Path, help="the .nemo file (Squeezeformer or Conformer CTC)")
    nemo.add_argument("--out", type=Path, required=True, help="model directory to write")

    export = verbs.add_parser("export", help="ONNX for ONNX Runtime and sherpa-onnx")
    export.add_argument("model", type=Path, help="model directory or .nemo file")
    export.add_argument("--out", type=Path, required=True, help="export folder to write")
    export.add_argument("--int8", action="store_true", help="also an int8-weight graph")

    backend = dict(choices=["torch", "onnx", "onnx-int8"], default="torch",
                   help="torch: a model directory or .nemo file; onnx, onnx-int8: an export "
                        "folder (squeezer export), run in ONNX Runtime")  # fmt: skip
    evaluate = verbs.add_parser("evaluate", help="WER/CER of a model on a manifest")
    evaluate.add_argument("model", type=Path, help="model directory, .nemo file or export")
    evaluate.add_argument("--backend", **backend)
    evaluate.add_argument("manifest", type=Path, help="Lhotse manifest (.jsonl.gz)")
    evaluate.add_argument("--beam", type=int, default=0, help="beam width (0: greedy only)")
    evaluate.add_argument("--lm", type=Path, help="KenLM model (ARPA or binary) for the beam")
    evaluate.add_argument("--batch-seconds", type=float, default=60.0)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--out", type=Path, help="folder for hypotheses and summary")

    transcribe = verbs.add_parser("transcribe", help="transcribe audio files, with word times")
    transcribe.add_argument("model", type=Path, help="model directory, .nemo file or export")
    transcribe.add_argument("--backend", **backend)
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

    recipes = verbs.add_parser("recipes", help="list the packaged recipes, or print one")
    recipes.add_argument("name", nargs="?", help="print this recipe (to copy and edit)")

    plot = verbs.add_parser("plot", help="training curves (loss, dev WER/CER, LR) as a PNG")
    plot.add_argument("runs", type=Path, nargs="+", help="run directories")
    plot.add_argument("--out", type=Path, help="PNG path (default: RUN/curves.png)")
    plot.add_argument("--x", choices=["step", "time_s"], default="step", help="horizontal axis")

    demo = verbs.add_parser("demo", help="train and compare Conformer and Squeezeformer")
    demo.add_argument("--recipes", nargs="+", default=list(_DEMO_RECIPES),
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

    flops = verbs.add_parser("flops", help="parameters and FLOPs per component; the ladder")
    flops.add_argument("models", nargs="*", help="presets or encoder YAML files (default: all)")
    flops.add_argument("--seconds", type=float, default=30.0, help="input duration")
    flops.add_argument("--vocab-size", type=int, default=128)
    flops.add_argument("--no-measure", action="store_true", help="analytic count only")
    flops.add_argument("--blocks", action="store_true", help="also print per-block tables")
    flops.add_argument("--ladder", action="store_true", help="conformer-m -> squeezeformer-sm")
    flops.add_argument("--scaling", choices=["s", "m"], help="cost vs length, equal width pair")
    flops.add_argument("--scaling-seconds", type=float, nargs="+", default=[5, 10, 30, 60, 120])
    flops.add_argument("--repeats", type=int, default=3)
    flops.add_argument("--threads", type=int, help="torch threads for the timings")
    flops.add_argument("--json", action="store_true")
    flops.add_argument("--plot", type=Path, help="PNG path stem for the plots")

    redundancy = verbs.add_parser("redundancy", help="temporal redundancy per block (Figure 2)")
    redundancy.add_argument("model", help="model directory, or a preset name (untrained)")
    redundancy.add_argument("manifest", type=Path, help="Lhotse manifest (.jsonl.gz)")
    redundancy.add_argument("--max-distance", type=int, default=8)
    redundancy.add_argument("--max-utterances", type=int, default=100)
    redundancy.add_argument(
        "--center", action="store_true", help="subtract each utterance's mean frame first"
    )
    redundancy.add_argument("--json", action="store_true")
    redundancy.add_argument("--plot", type=Path, help="heatmap PNG")

    verb_functions = {
        "demo": _demo,
        "redundancy": _redundancy,
        "flops": _flops,
        "plot": _plot,
        "evaluate": _evaluate,
        "export": _export,
        "transcribe": _transcribe,
        "train": _train,
        "recipes": _recipes,
        "import-nemo": _import_nemo,
        "presets": _presets,
        "bench": _bench,
        "bench-deploy": _bench_deploy,
        "prepare": _prepare,
        "bench-transcribe": _bench_transcribe,
        "corpus": _corpus,
    }
    return parser, verb_functions


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser, verbs = _parser()
    args = parser.parse_args(argv)
    try:
        return verbs[args.verb](args)
    except ModuleNotFoundError as error:
        message = missing_extra_message(error)
        if message is None:
            raise
        print(f"squeezer {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"squeezer {args.verb}: error: {error}", file=sys.stderr)
        return 2
