"""What every encoder benchmark process shares: the PyPI peer, the child's environment, the CPU.

The comparison itself alternates fresh processes round by round (`bench_rounds`); each process
times one implementation (`bench_peer`). The peer (`squeezeformer` from PyPI) is pip-installed
into a throwaway folder that only its own process sees on PYTHONPATH, so it never shadows
anything in our environment.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import squeezer

__all__ = [
    "DEFAULT_PEER_DIR",
    "PEER_PACKAGE",
    "PEER_VERSION",
    "WORKER_TIMEOUT_S",
    "cpu_model",
    "ensure_peer",
    "last_error_line",
    "worker_env",
]

PEER_PACKAGE = "squeezeformer"
PEER_VERSION = "1.0.0"
DEFAULT_PEER_DIR = Path(".bench/peer")  # relative to the working directory; git-ignored
WORKER_TIMEOUT_S = 1800  # SM fwd+bwd takes ~30 s on 2 cores; this only catches a hang


def ensure_peer(target_dir: Path) -> Path:
    """Install the peer into `target_dir` with `pip --target` unless it is there; return it."""
    target_dir = Path(target_dir).resolve()
    marker = target_dir / f"{PEER_PACKAGE}-{PEER_VERSION}.dist-info"
    if marker.is_dir() and (target_dir / PEER_PACKAGE / "__init__.py").is_file():
        return target_dir
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
        "--target", str(target_dir), f"{PEER_PACKAGE}=={PEER_VERSION}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not marker.is_dir():
        raise RuntimeError(
            f"could not install {PEER_PACKAGE}=={PEER_VERSION} into {target_dir} with pip "
            f"(no network?): {last_error_line(result.stderr)}"
        )
    return target_dir


def last_error_line(stderr: str) -> str:
    """The line of a child's stderr that says why it failed, for a one-line message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "no error output"


def worker_env(threads: int, peer_dir: Path | None) -> dict[str, str]:
    """The environment of a benchmark process: fixed thread counts, the right import path."""
    env = dict(os.environ)
    # OpenMP and MKL read these before torch starts, so the pools never grow past `threads`.
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    # The child must import the same `squeezer` as this process; only the peer's child also
    # sees the peer folder, which holds nothing but the `squeezeformer` package.
    ours = str(Path(squeezer.__file__).resolve().parents[1])
    paths = [str(peer_dir)] if peer_dir is not None else []
    paths += [ours, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
