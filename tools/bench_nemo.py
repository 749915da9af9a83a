"""`make bench-nemo`: squeezer versus NeMo 2.7.3 on the same imported Squeezeformer-XS .nemo.

Runs in squeezer's venv. NeMo's side runs in NeMo's throwaway venv (tools/nemo_venv.sh), each
side in fresh processes, alternating (squeezer, NeMo, squeezer, NeMo, ...) because this CPU is
shared and noisy; the report gives the median over rounds of each process's best time.

    .venv/bin/python tools/bench_nemo.py --nemo-python /tmp/nemo-venv/bin/python \
        --rounds 3 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from squeezer.analysis.bench import cpu_model
from squeezer.cli import write_report_section

WORKER = Path(__file__).with_name("bench_nemo_worker.py")
SECTION = "nemo-encoder-throughput"


def _run(python: str, *arguments: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torch.set_num_threads decides
    result = subprocess.run([python, str(WORKER), *arguments], capture_output=True, text=True,
                            env=env, check=False, timeout=1800)  # fmt: skip
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["(no output)"]
        raise SystemExit(f"{python} {WORKER.name} {' '.join(arguments)} failed: {lines[-1]}")
    return result.stdout.strip().splitlines()[-1]


def _table(results: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| encoder | params | output (B, D, T') / (B, T', D) | fwd audio-s/s | fwd+bwd audio-s/s "
        "| fwd rounds | fwd+bwd rounds |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"squeezer": "`squeezer` (ours), imported", "nemo": "NeMo `SqueezeformerEncoder`"}
    for name, runs in results.items():
        forward = [run["forward_audio_s_per_s"] for run in runs]
        train = [run["train_audio_s_per_s"] for run in runs]
        cells = [
            labels[name],
            f"{runs[0]['params'] / 1e6:.2f} M",
            str(tuple(runs[0]["output_shape"])),
            f"{statistics.median(forward):.1f}",
            f"{statistics.median(train):.1f}",
            " / ".join(f"{value:.0f}" for value in forward),
            " / ".join(f"{value:.0f}" for value in train),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(results: dict[str, list[dict]], rounds: int, threads: int, command: str) -> str:
    ours, nemo = results["squeezer"], results["nemo"]
    ratio = [statistics.median(r[key] for r in ours) / statistics.median(r[key] for r in nemo)
             for key in ("forward_audio_s_per_s", "train_audio_s_per_s")]  # fmt: skip
    return "\n".join([
        "## Imported NeMo Squeezeformer-XS: squeezer versus NeMo 2.7.3",
        "",
        "One random-weight Squeezeformer-XS CTC model built and saved by NeMo 2.7.3 (the "
        "published XS config: d_model 144, 16 layers, reduction before layer 7, recovery before "
        "layer 15), timed as NeMo's own `SqueezeformerEncoder` (restored with "
        "`ASRModel.restore_from`) and as squeezer's encoder (`squeezer.load_model` on the same "
        ".nemo file). Batch of 8 utterances of 10 s (80-dim features, 1000 frames each), fp32 "
        f"on CPU, {threads} threads; per process a warm-up and the best of 3 runs; {rounds} "
        "rounds of fresh processes, squeezer and NeMo alternating; the table gives the median "
        "over rounds (each round's value after it). fwd: eval-mode forward under `no_grad`; "
        "fwd+bwd: train-mode forward and backward of the mean square of the output. Throughput "
        "is seconds of audio per second of wall time.",
        "",
        *_table(results),
        "",
        f"squeezer / NeMo: {ratio[0]:.2f}x forward, {ratio[1]:.2f}x forward+backward.",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch "
        f"{ours[0]['torch']} (squeezer) / {nemo[0]['torch']} (NeMo venv)",
        f"- date: {datetime.now(timezone.utc).date().isoformat()}",
        f"- command: `{command}`",
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nemo-python", default="/tmp/nemo-venv/bin/python")
    parser.add_argument("--model", type=Path, default=Path(".bench/nemo/squeezeformer_xs.nemo"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="markdown report to update (a marked section)")
    args = parser.parse_args()
    if not args.model.is_file():
        _run(args.nemo_python, "--make-model", str(args.model))
    pythons = {"squeezer": sys.executable, "nemo": args.nemo_python}
    results: dict[str, list[dict]] = {"squeezer": [], "nemo": []}
    for round_index in range(args.rounds):
        for name, python in pythons.items():
            line = _run(python, "--implementation", name, "--model", str(args.model),
                        "--repeats", str(args.repeats), "--threads", str(args.threads))  # fmt: skip
            results[name].append(json.loads(line))
            print(f"round {round_index + 1} {name}: {line}", file=sys.stderr)
    command = "python tools/bench_nemo.py " + shlex.join(sys.argv[1:])
    text = report(results, args.rounds, args.threads, command)
    print(text)
    if args.out:
        write_report_section(args.out, SECTION, text)


if __name__ == "__main__":
    main()
