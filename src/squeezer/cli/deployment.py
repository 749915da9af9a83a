"""Deployment verbs: ONNX export, and PyTorch against ONNX Runtime and sherpa-onnx."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezer.cli import sequences
from squeezer.cli.common import command_line, publish, run_label


def _add_export(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser("export", help="ONNX for ONNX Runtime and sherpa-onnx (TFLite "
                              "for sequence models)")  # fmt: skip
    export.add_argument("model", type=Path, help="model directory or .nemo file")
    export.add_argument("--out", type=Path, required=True, help="export folder to write")
    export.add_argument("--int8", action="store_true", help="also an int8-weight graph")
    export.add_argument("--tflite", action="store_true",
                        help="sequence models: also a TFLite graph (squeezer[tflite])")  # fmt: skip
    export.add_argument("--max-length", type=int, default=512,
                        help="sequence models: the longest sequence a fixed-length graph "
                             "takes (TFLite; shorter ones are padded)")  # fmt: skip
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    """ONNX graph(s), tokens.txt and settings for ONNX Runtime and sherpa-onnx."""
    if sequences.is_sequence_model(args.model):
        if args.int8:
            raise ValueError("--int8 is for speech models")
        return sequences.export(args)
    if args.tflite:
        raise ValueError("--tflite is for sequence models; speech models export to ONNX")
    from squeezer.export import export_onnx
    from squeezer.loading import load_model

    result = export_onnx(load_model(args.model), args.out, int8=args.int8)
    for graph in result.graphs:
        print(f"{graph}\t{graph.stat().st_size / 2**20:.1f} MB")
    return 0


def _add_bench_deploy(verbs: argparse._SubParsersAction) -> None:
    deploy = verbs.add_parser("bench-deploy", help="PyTorch against ONNX Runtime and sherpa")
    deploy.add_argument("models", nargs="+", help="presets or trained model directories")
    deploy.add_argument("--manifest", type=Path, help="test split: end-to-end RTF and CER")
    deploy.add_argument("--rounds", type=int, default=5)
    deploy.add_argument("--threads", type=int, default=2)
    deploy.add_argument("--out", type=Path, help="markdown report to update")
    deploy.set_defaults(handler=_bench_deploy)


def _bench_deploy(args: argparse.Namespace) -> int:
    """PyTorch against ONNX Runtime fp32/int8 (and sherpa-onnx end to end)."""
    from squeezer.analysis import bench_deploy

    throughput, transcription = [], []
    for name in args.models:
        model, export_dir, scratch = bench_deploy.prepare(name, args.threads)
        with scratch:
            path = Path(name)
            label = run_label(path) if path.exists() else name
            throughput += bench_deploy.network_throughput(
                label, model, export_dir, args.rounds, args.threads
            )
            if args.manifest and path.exists():
                transcription += bench_deploy.transcription_rows(
                    label, model, export_dir, args.manifest, args.threads, args.rounds
                )
    report = bench_deploy.format_markdown(
        throughput, transcription, command_line("bench-deploy"), args.rounds, args.threads
    )
    publish(report, args.out, "deployment")
    return 0


def _add_bench_transcribe(verbs: argparse._SubParsersAction) -> None:
    words = verbs.add_parser("bench-transcribe", help="word-time accuracy and batching speed")
    words.add_argument("model", help="trained model directory or .nemo file")
    words.add_argument("--manifest", type=Path, help="test split: batched against one by one")
    words.add_argument("--rounds", type=int, default=3)
    words.add_argument("--batch-seconds", type=float, default=120.0)
    words.add_argument("--threads", type=int, default=2)
    words.add_argument("--out", type=Path, help="markdown report to update")
    words.set_defaults(handler=_bench_transcribe)


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
        run_label(Path(args.model)), errors, factors, command_line("bench-transcribe"),
        args.rounds, args.threads,
    )  # fmt: skip
    publish(report, args.out, "transcription")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    """Add the deployment verbs, each with its handler."""
    _add_export(verbs)
    _add_bench_deploy(verbs)
    _add_bench_transcribe(verbs)
