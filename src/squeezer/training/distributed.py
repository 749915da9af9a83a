"""One process or many: the same code runs alone or under `torchrun --nproc_per_node N`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; then a process group is formed (NCCL on CUDA,
gloo on CPU). Alone, every collective below is a no-op.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "Distributed",
    "all_agree",
    "barrier",
    "init_distributed",
    "seed_everything",
    "summed_over_ranks",
]


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _device(setting: str, local_rank: int) -> torch.device:
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("run.device='cuda' but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if setting == "cpu":
        return torch.device("cpu")
    raise ValueError(f"run.device={setting!r} is not one of auto, cuda, cpu")


def init_distributed(device: str = "auto") -> Distributed:
    """Join the torchrun process group if there is one; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = _device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(rank, world_size, local_rank, chosen)


def seed_everything(seed: int) -> None:
    """Seed torch's, Python's and NumPy's global generators (a library may draw from any)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_agree(flag: bool, device: torch.device) -> bool:
    """True only if `flag` is true on every rank (so all ranks take the same branch)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def summed_over_ranks(counts: dict[str, int], dist: Distributed) -> dict[str, int]:
    """Per-reason counts summed over every rank (each rank counted the batches it read)."""
    if dist.world_size == 1:
        return {reason: n for reason, n in counts.items() if n}
    gathered: list[list[str] | None] = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, sorted(counts))
    reasons = sorted({reason for names in gathered for reason in names or []})
    if not reasons:
        return {}
    totals = torch.tensor([counts.get(r, 0) for r in reasons], dtype=torch.int64,
                          device=dist.device)  # fmt: skip
    torch.distributed.all_reduce(totals)
    return {reason: int(n) for reason, n in zip(reasons, totals, strict=True) if n}
