"""Preemption: SIGTERM or SIGUSR1 asks the run to checkpoint at the next step and exit 0.

Cluster schedulers stop jobs with signals: SLURM sends SIGTERM (and, with `--signal=USR1@T`,
SIGUSR1 T seconds ahead of the time limit), Kubernetes and most spot-instance agents SIGTERM.
The handler only records the request; the loop looks at it at each optimiser-step boundary,
where the state is whole, so the checkpoint it writes resumes exactly. Under torchrun every rank
stops at the same step however many of them were signalled (`all_agree` in the loop).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from squeezer.signals import PREEMPTION_SIGNALS

__all__ = ["PREEMPTION_SIGNALS", "Preempted", "PreemptionFlag"]


class Preempted(Exception):
    """The run stopped on a signal after writing `checkpoint`; `--resume` continues it."""

    def __init__(self, signal_name: str, step: int, checkpoint: str) -> None:
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        super().__init__(f"{signal_name}: stopped at step {step}, checkpoint {checkpoint}")


class PreemptionFlag:
    """Catches the preemption signals while installed; `requested` names the first one."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> PreemptionFlag:
        # Python delivers signals to the main thread only; elsewhere (a notebook's worker
        # thread) the default behaviour stays and preemption is simply not caught.
        if threading.current_thread() is threading.main_thread():
            for number in PREEMPTION_SIGNALS:
                self._previous[number] = signal.signal(number, self._catch)
        return self

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _catch(self, number: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(number).name
