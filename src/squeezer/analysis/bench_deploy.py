"""Deployment benchmark: PyTorch eager against ONNX Runtime (fp32, int8) and sherpa-onnx.

    squeezer bench-deploy squeezeformer-xs results/demo/runs/squeezeformer/model \\
        --manifest data/synth-demo/test.jsonl.gz --out docs/benchmarks.md

For each model (a preset with random weights, or a trained model directory):

- network throughput (encoder + CTC head, audio seconds per second) on `make bench`'s batch
  (8 utterances of 10 s and 8 s features), PyTorch eager fp32 against ONNX Runtime fp32 and
  int8, in alternating rounds (torch, ORT fp32, ORT int8, torch, ...) in one process with the
  same thread count; the median of the rounds and their spread;
- for a trained model and a test manifest: the real-time factor of transcribing every file end
  to end (audio loading, features, network, greedy decoding) with `squeezer transcribe`'s
  PyTorch and ONNX backends and with sherpa-onnx, each one's CER, and the file sizes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from squeezer.analysis import bench_peer
from squeezer.export import ONNX_FILE, ONNX_INT8_FILE, export_onnx
from squeezer.loading import load_model
from squeezer.model import WEIGHTS_FILE, AsrModel
from squeezer.onnx_model import SherpaRecognizer, load_onnx_model
from squeezer.scoring import error_rates

__all__ = ["ThroughputRow", "TranscriptionRow", "format_markdown", "network_throughput",
           "prepare", "transcription_rows"]  # fmt: skip


@dataclass(frozen=True)
class ThroughputRow:
    """Audio seconds per second of one runtime over the rounds: median, min and max."""

    model: str
    runtime: str
    median: float
    low: float
    high: float
    size_mb: float


@dataclass(frozen=True)
class TranscriptionRow:
    """End-to-end transcription of a test split: real-time factor (median, min, max) and CER."""

    model: str
    runtime: str
    real_time_factor: float  # median over the rounds
    low: float
    high: float
    cer: float
    wer: float
    identical: int  # files whose text equals squeezer PyTorch's (the first runtime's)
    files: int


def _batch(feature_dim: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    lengths = torch.tensor(bench_peer.batch_lengths())
    generator = torch.Generator().manual_seed(bench_peer.SEED)
    x = torch.randn(len(lengths), int(lengths.max()), feature_dim, generator=generator)
    return x, lengths, float(lengths.sum()) * bench_peer.FRAME_SHIFT_S


def _seconds(run, x, lengths) -> float:
    start = time.perf_counter()
    run(x, lengths)
    return time.perf_counter() - start


@torch.no_grad()
def network_throughput(
    name: str, model: AsrModel, export_dir: Path, rounds: int, threads: int
) -> list[ThroughputRow]:
    """PyTorch eager fp32, ONNX Runtime fp32 and int8 on one batch, alternating by round.

    `export_dir` is `prepare`'s: the graphs, and the safetensors weights beside it.
    """
    torch.set_num_threads(threads)
    runtimes = {
        "PyTorch eager fp32": (model.eval(), export_dir.parent / "weights" / WEIGHTS_FILE),
        "ONNX Runtime fp32": (load_onnx_model(export_dir, threads=threads), export_dir / ONNX_FILE),
        "ONNX Runtime int8": (
            load_onnx_model(export_dir, int8=True, threads=threads),
            export_dir / ONNX_INT8_FILE,
        ),
    }
    x, lengths, audio_s = _batch(model.config.input_dim)
    for run, _ in runtimes.values():  # warm-up: allocations, oneDNN / ORT kernel choice
        _seconds(run, x, lengths)
    times: dict[str, list[float]] = {label: [] for label in runtimes}
    for _ in range(rounds):
        for label, (run, _) in runtimes.items():
            times[label].append(_seconds(run, x, lengths))
    rows = []
    for label, (_, path) in runtimes.items():
        speeds = [audio_s / t for t in times[label]]
        size = path.stat().st_size / 2**20 if path.is_file() else float("nan")
        rows.append(ThroughputRow(name, label, statistics.median(speeds), min(speeds),
                                  max(speeds), size))  # fmt: skip
    return rows


def transcription_rows(
    name: str, model: AsrModel, export_dir: Path, manifest: Path, threads: int, rounds: int = 3
) -> list[TranscriptionRow]:
    """Transcribe every file of `manifest` with each runtime, one file at a time, in
    alternating rounds; the real-time factor's median and spread, and CER against its texts.

    Each runtime is loaded before the clock starts (an ONNX Runtime session optimises its
    graph once, about a second), so the rounds time transcription alone."""
    from squeezer.data.dataset import cut_text
    from squeezer.data.manifests import load_cuts
    from squeezer.text import normalize_text
    from squeezer.transcribe import transcribe

    cuts = list(load_cuts(manifest))
    paths = [Path(cut.recording.sources[0].source) for cut in cuts]
    references = [normalize_text(cut_text(cut)) for cut in cuts]
    audio_s = sum(cut.duration for cut in cuts)
    onnx_fp32 = load_onnx_model(export_dir, threads=threads)
    onnx_int8 = load_onnx_model(export_dir, int8=True, threads=threads)
    sherpa = SherpaRecognizer(export_dir, threads)
    runners = {
        "squeezer, PyTorch": lambda: [r.text for r in transcribe(model, paths, batch_seconds=1e-9)],
        "squeezer, ONNX Runtime fp32": lambda: [
            r.text for r in transcribe(onnx_fp32, paths, batch_seconds=1e-9)
        ],
        "squeezer, ONNX Runtime int8": lambda: [
            r.text for r in transcribe(onnx_int8, paths, batch_seconds=1e-9)
        ],
        "sherpa-onnx fp32": lambda: sherpa.transcribe(paths),
    }
    texts: dict[str, list[str]] = {}
    times: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(rounds):
        for label, run in runners.items():
            start = time.perf_counter()
            texts[label] = [normalize_text(text) for text in run()]
            times[label].append(time.perf_counter() - start)
    first = texts[next(iter(runners))]
    rows = []
    for label in runners:
        rates = error_rates(references, texts[label])
        same = sum(a == b for a, b in zip(texts[label], first, strict=True))
        factors = [t / audio_s for t in times[label]]
        median = statistics.median(factors)
        rows.append(TranscriptionRow(name, label, median, min(factors), max(factors), rates.cer,
                                     rates.wer, same, len(first)))  # fmt: skip
    return rows


def prepare(model_path: str, threads: int) -> tuple[AsrModel, Path, tempfile.TemporaryDirectory]:
    """Load (or build, for a preset) the model and export it with int8 into a scratch folder."""
    from squeezer.config import EncoderConfig, list_presets
    from squeezer.model import save_model
    from squeezer.text import CharTokenizer

    torch.set_num_threads(threads)
    scratch = tempfile.TemporaryDirectory()
    if model_path in list_presets():
        tokenizer = CharTokenizer()
        model = AsrModel(EncoderConfig.preset(model_path), tokenizer.vocab_size).eval()
        model.tokenizer = tokenizer
    else:
        model = load_model(model_path)
    save_model(model, Path(scratch.name) / "weights", model.tokenizer)  # for its file size
    export_dir = Path(scratch.name) / "onnx"
    export_onnx(model, export_dir, int8=True)
    return model, export_dir, scratch


def format_markdown(
    throughput: list[ThroughputRow], transcription: list[TranscriptionRow], command: str,
    rounds: int, threads: int,
) -> str:  # fmt: skip
    """The deployment section of docs/benchmarks.md."""
    lines = [
        "## Deployment: PyTorch eager, ONNX Runtime fp32 and int8, sherpa-onnx",
        "",
        f"`{command}`; {threads} threads, CPU: {rounds} alternating rounds of `make bench`'s "
        "batch (8 utterances, 10 s and 8 s), network only (encoder + CTC head, no features); "
        "median audio seconds per second, [min, max] over the rounds.",
        "",
        "| model | runtime | audio-s/s | [min, max] | vs PyTorch | file (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = {row.model: row.median for row in throughput if row.runtime.startswith("PyTorch")}
    for row in throughput:
        lines.append(
            f"| {row.model} | {row.runtime} | {row.median:.0f} | [{row.low:.0f}, {row.high:.0f}] "
            f"| {row.median / base[row.model]:.2f}x | {row.size_mb:.1f} |"
        )
    if transcription:
        lines += [
            "",
            "End to end on the test split (load audio, features, network, greedy decoding), one "
            f"file at a time, each runtime loaded beforehand; {rounds} alternating rounds, median "
            "real-time factor and [min, max]; CER and WER against the manifest's texts:",
            "",
            "| model | runtime | real-time factor | [min, max] | CER % | WER % | "
            "text = PyTorch's |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {row.model} | {row.runtime} | {row.real_time_factor:.4f} | "
            f"[{row.low:.4f}, {row.high:.4f}] | "
            f"{100 * row.cer:.2f} | {100 * row.wer:.2f} | {row.identical} of {row.files} |"
            for row in transcription
        ]
    return "\n".join(lines) + "\n"
