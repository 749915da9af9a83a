"""Peak memory and wall time of `squeezer transcribe` on 1-, 10- and 60-minute files.

    python tools/long_audio_memory.py --preset squeezeformer-xs --minutes 1 10 60 --threads 2
    python tools/long_audio_memory.py results/demo/runs/squeezeformer/model --timestamps

Each file is synthesised (deterministic bursts of harmonic tone and noise separated by quiet
pauses, so that the timestamps' speech/pause finder has pauses to find) as 16-bit PCM WAV or
FLAC in a temporary folder, written a minute at a time. Each file is then transcribed by the CLI
(`python -m squeezer transcribe MODEL FILE`) in a fresh process, whose own peak resident set
size comes from `os.wait4` (the kernel's ru_maxrss for that one child, not a maximum over all
children). A first row runs a 2-second file: the process's fixed cost (Python, torch, the
model). Without a MODEL a random-weight model of `--preset` with a character vocabulary is
built and saved: its text is noise, but its memory and time are those of a trained model of
that size. Prints a markdown table (docs/benchmarks.md, Long audio).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000
PERIOD_S = 2.0  # one burst and one pause
BURST_S = 1.4


def synthesise(path: Path, seconds: float, subtype: str = "PCM_16") -> Path:
    """A deterministic mono file of `seconds`, written a minute at a time (bounded memory):
    every 2 s, 1.4 s of a 150 Hz harmonic tone plus noise, then 0.6 s of faint noise."""
    total = round(seconds * SAMPLE_RATE)
    block = 60 * SAMPLE_RATE
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, subtype=subtype) as out:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / SAMPLE_RATE
            rng = np.random.default_rng(start // block)  # per minute: same audio at any length
            tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
            burst = (t % PERIOD_S) < BURST_S
            signal = np.where(burst, 0.2 * tone + 0.05 * rng.standard_normal(n),
                              0.002 * rng.standard_normal(n))  # fmt: skip
            out.write(signal.astype(np.float32))
    return path


def random_model(preset: str, directory: Path) -> Path:
    """A random-weight model of `preset` with a character vocabulary, saved to `directory`."""
    import torch

    from squeezer.config import EncoderConfig
    from squeezer.model import AsrModel, save_model
    from squeezer.text import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    model = AsrModel(EncoderConfig.preset(preset), vocab_size=tokenizer.vocab_size).eval()
    return save_model(model, directory, tokenizer)


def measure(command: list[str], threads: int, max_memory_gb: float | None, out: Path) -> dict:
    """Run `command` in a fresh process: its peak RSS (MiB), wall seconds and exit status."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def limit() -> None:  # in the child: an allocation past the cap fails instead of the host
        if max_memory_gb is not None:
            cap = int(max_memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    start = time.perf_counter()
    with out.open("wb") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE,
                                   env=env, preexec_fn=limit)  # fmt: skip
        stderr = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        print(f"  exit {process.returncode}: {last[0][:200]}", file=sys.stderr)
    return {
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "seconds": seconds,
        "exit": process.returncode,
        "output_bytes": out.stat().st_size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="model directory (else --preset)")
    parser.add_argument("--preset", default="squeezeformer-xs",
                        help="random-weight model to build when no MODEL is given")  # fmt: skip
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    parser.add_argument("--format", choices=["wav", "flac"], default="wav")
    parser.add_argument("--timestamps", action="store_true", help="transcribe --timestamps")
    parser.add_argument("--json", action="store_true", help="transcribe --format json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-memory-gb", type=float, default=None,
                        help="address-space cap per transcribe process (RLIMIT_AS)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        model = args.model or random_model(args.preset, work / f"model-{args.preset}")
        flags = (["--timestamps"] if args.timestamps else []) + (
            ["--format", "json"] if args.json else []
        )
        rows = []
        for minutes in [2 / 60, *args.minutes]:
            name = f"{minutes:g}min.{args.format}" if minutes >= 1 else f"{minutes * 60:g}s.wav"
            path = work / name
            if not path.exists():
                synthesise(path, minutes * 60, "PCM_16")
            command = [sys.executable, "-m", "squeezer", "transcribe", str(model), str(path),
                       *flags]  # fmt: skip
            print(f"{name}: {' '.join(command[1:])}", file=sys.stderr)
            result = measure(command, args.threads, args.max_memory_gb, work / f"{name}.out")
            result.update(name=name, minutes=minutes, file_mib=path.stat().st_size / 2**20)
            print(f"  {result}", file=sys.stderr)
            rows.append(result)

    label = str(args.model) if args.model else f"random-weight {args.preset}"
    print(f"model: {label}; `squeezer transcribe{' ' + ' '.join(flags) if flags else ''}`, "
          f"{args.threads} threads; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print("| audio | file MiB | peak RSS MiB | over the 2 s file MiB | wall s | "
          "real-time factor | stdout bytes | exit |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    base = rows[0]["peak_rss_mib"]
    for row in rows:
        audio = f"{row['minutes']:g} min" if row["minutes"] >= 1 else row["name"].split(".")[0]
        print(f"| {audio} | {row['file_mib']:.1f} | {row['peak_rss_mib']:.0f} | "
              f"{row['peak_rss_mib'] - base:+.0f} | {row['seconds']:.1f} | "
              f"{row['seconds'] / (row['minutes'] * 60):.4f} | {row['output_bytes']} | "
              f"{row['exit']} |")  # fmt: skip
    return 0 if all(row["exit"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
