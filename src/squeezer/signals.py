"""The signals that ask a training run to checkpoint and stop, and what loader workers do with
them (`squeezer.training.preemption` handles them in the main process)."""

from __future__ import annotations

import signal

__all__ = ["PREEMPTION_SIGNALS", "leave_signals_to_the_main_process"]

PREEMPTION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name)
)


def leave_signals_to_the_main_process(worker_id: int) -> None:
    """A loader worker's init: ignore SIGTERM/SIGUSR1. A scheduler that signals the whole job
    (SLURM does) would otherwise kill the workers before the main process has written its
    checkpoint; the loader's owner shuts them down itself."""
    for number in PREEMPTION_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
