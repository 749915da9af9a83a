"""Analysis verbs: the model zoo, FLOPs, temporal redundancy, encoder throughput."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from squeezer import EncoderConfig, list_presets
from squeezer.cli.common import command_line, log, publish


def _add_presets(verbs: argparse._SubParsersAction) -> None:
    presets = verbs.add_parser("presets", help="list the model zoo with parameter counts")
    presets.add_argument("--vocab-size", type=int, default=128, help="tokens without the blank")
    presets.add_argument("--yaml", choices=list_presets(), help="also print one preset as YAML")
    presets.set_defaults(handler=_presets)


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


def _add_flops(verbs: argparse._SubParsersAction) -> None:
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
    flops.set_defaults(handler=_flops)


def _flops(args: argparse.Namespace) -> int:
    """Parameters and FLOPs per component, the ablation ladder, cost versus length."""

    import torch

    from squeezer.analysis import flops_plot, flops_report, flops_scaling, flops_table

    command = command_line("flops")
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


def _add_redundancy(verbs: argparse._SubParsersAction) -> None:
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
    redundancy.set_defaults(handler=_redundancy)


def _redundancy(args: argparse.Namespace) -> int:
    """Cosine similarity of frames k apart, per block (paper Figure 2)."""

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


def _add_bench(verbs: argparse._SubParsersAction) -> None:
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
    bench.set_defaults(handler=_bench)


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
        bench_rounds.summarise(measurements), measurements, command=command_line("bench")
    )
    publish(report, args.out, "encoder-throughput")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the analysis verbs, each with its handler."""
    _add_presets(verbs)
    _add_flops(verbs)
    _add_redundancy(verbs)
    _add_bench(verbs)
