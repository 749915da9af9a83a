"""The training data: tokenizer, filtering, the loader, and the per-reason skip counts.

Every cut that does not reach the loss is counted under a reason: manifest lines that are not
cuts (`read_manifest`), cuts filtered before training (`filter_cuts`: durations, transcripts CTC
cannot align) and cuts whose audio a loader worker could not read (`AsrBatch.skipped`).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import torch
from lhotse import CutSet
from torch.utils.data import DataLoader

from squeezer.data.dataset import (
    AsrDataset,
    FilterReport,
    cut_text,
    filter_cuts,
    make_dataloader,
)
from squeezer.features import LogMelFrontend
from squeezer.model import AsrModel
from squeezer.text import Tokenizer, build_tokenizer, load_tokenizer
from squeezer.training.distributed import Distributed, barrier
from squeezer.training.recipe import TrainConfig

__all__ = ["prepare_tokenizer", "training_loader"]

log = logging.getLogger("squeezer.training")


def prepare_tokenizer(config: TrainConfig, out_dir: Path, dist: Distributed, cuts) -> Tokenizer:
    """The run's tokenizer (`out_dir/tokenizer`), trained on the manifest's text by rank 0
    the first time."""
    directory = out_dir / "tokenizer"
    if dist.is_main and not (directory / "tokenizer.json").is_file():
        texts = [cut_text(cut) for cut in cuts]
        tok = config.tokenizer
        build_tokenizer(tok.kind, texts, directory, tok.vocab_size, tok.model_type)
    barrier()
    return load_tokenizer(directory)


def training_loader(
    config: TrainConfig,
    model: AsrModel,
    tokenizer: Tokenizer,
    cuts: CutSet,
    manifest_skips: Counter,
    dist: Distributed,
) -> tuple[DataLoader, FilterReport]:
    """The shuffled, bucketed loader over the cuts that can reach the loss, and the report of
    those that cannot (manifest lines included)."""
    data = config.data
    # The fastest speed perturbation (if faster than 1) leaves the fewest frames for CTC.
    fastest = max((*data.speed_perturb, 1.0))

    def frames(samples: int) -> int:
        samples = int(samples / fastest)
        return int(model.frames_for_samples(torch.tensor([samples]))[0])

    cuts, report = filter_cuts(cuts, tokenizer.encode, frames, data.min_duration, data.max_duration)
    report.dropped.update({f"manifest line {reason}": n for reason, n in manifest_skips.items()})
    if dist.is_main:
        log.info("training data: %s", report.summary())
    if len(cuts) == 0:
        raise ValueError(f"{data.train}: no utterance is usable for training ({report.summary()})")
    dataset = AsrDataset(
        LogMelFrontend(model.frontend.config),
        tokenizer.encode,
        max_seconds=data.max_duration + 1,
        speed_factors=data.speed_perturb,
    )
    loader = make_dataloader(
        cuts,
        dataset,
        data.max_batch_seconds,
        shuffle=True,
        num_workers=data.num_workers,
        seed=config.run.seed,
        num_buckets=data.num_buckets,
        drop_last=False,  # uneven batch counts across ranks are handled by the loop
        preemptible=True,
    )
    return loader, report
