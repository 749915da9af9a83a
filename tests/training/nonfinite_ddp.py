"""`squeezer` CLI under torchrun with a poisoned loss on one rank at a time (a test helper).

Rank 1's 3rd loss is NaN; rank 0's 6th loss has a NaN gradient. Run by
tests/training/test_nonfinite.py as `torchrun --nproc_per_node 2 nonfinite_ddp.py train ...`.
"""

from __future__ import annotations

import os
import sys

import torch

import squeezer.training.step as step
from squeezer.cli import main

RANK = int(os.environ["RANK"])
_real_loss, _calls = step.ctc_loss, []


def _injected(model, batch, augment):
    _calls.append(1)
    loss = _real_loss(model, batch, augment)
    if RANK == 1 and len(_calls) == 3:
        return loss * float("nan")
    if RANK == 0 and len(_calls) == 6:
        first = next(model.parameters()).flatten()[0]
        return loss + torch.sqrt(first - first)
    return loss


step.ctc_loss = _injected
sys.exit(main(sys.argv[1:]))
