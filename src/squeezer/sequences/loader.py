"""Batches of sequences for training and inference: lengths probed once, batches by length,
unreadable sequences counted and skipped, augmentation drawn from (seed, epoch, sequence).

`probe_lengths` reads each record's length from its `.npy` header (nothing else is read), so
a split of 100 000 sequences is batched in seconds. `LengthSampler` yields an epoch's batches
of indices, strided over the ranks under torchrun, and can skip the batches a resumed run
already trained on. `BatchReader` turns one batch of indices into a `SequenceBatch`; a record
whose arrays turn out unusable is skipped and counted in `batch.skipped` with its line, as the
speech loader counts unreadable audio.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from squeezer.sequences.dataset import SequenceBatch, SequenceDataset, collate, length_batches
from squeezer.sequences.manifest import SequenceRecord, open_array
from squeezer.signals import leave_signals_to_the_main_process

__all__ = ["BatchReader", "LengthSampler", "probe_lengths", "sequence_loader"]

log = logging.getLogger("squeezer.sequences")


def probe_length(record: SequenceRecord) -> int:
    """The record's number of positions, from the `.npy` header alone; ValueError naming its
    line when the file is not a readable (T, F) array."""
    shape = open_array(record.features, "features", record.where, header_only=True).shape
    if len(shape) != 2 or shape[0] < 1:
        raise ValueError(f"{record.where}: features must be (T, F), got {tuple(shape)}")
    return int(shape[0])


def probe_lengths(
    records: Sequence[SequenceRecord], strict: bool
) -> tuple[list[int | None], Counter]:
    """Each record's length (None where it cannot be read when not `strict`), and the count of
    unreadable records by reason; `strict` raises the first record's one-line error instead."""
    lengths, dropped = [], Counter()
    for record in records:
        try:
            lengths.append(probe_length(record))
        except ValueError as error:
            if strict:
                raise
            log.warning("skipped: %s", error)
            lengths.append(None)
            dropped["unreadable features"] += 1
    return lengths, dropped


class LengthSampler:
    """An epoch's batches of indices by length (`length_batches`), reshuffled each epoch from
    (seed, epoch), this rank's share of them, and the epoch number with each batch."""

    def __init__(
        self,
        lengths: Sequence[int],
        indices: Sequence[int],
        max_positions: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lengths, self.indices = list(lengths), list(indices)
        self.max_positions, self.shuffle, self.seed = max_positions, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._skip = epoch, 0

    def skip(self, batches: int) -> None:
        """Leave out this epoch's first `batches` batches (a resumed run trained on them)."""
        self._skip = batches

    def _batches(self) -> list[list[int]]:
        seed = self.seed * 1_000_003 + self.epoch
        grouped = length_batches([self.lengths[i] for i in self.indices], self.max_positions,
                                 self.shuffle, seed)  # fmt: skip
        return [[self.indices[i] for i in batch] for batch in grouped]

    def __iter__(self) -> Iterator[tuple[int, int, list[int]]]:
        batches = self._batches()[self.rank :: self.world_size]
        for number, batch in enumerate(batches):
            if number >= self._skip:
                yield self.epoch, number, batch

    def __len__(self) -> int:
        return max(0, len(self._batches()[self.rank :: self.world_size]) - self._skip)


class BatchReader(torch.utils.data.Dataset):
    """(epoch, batch number, indices) -> a `SequenceBatch` of the readable records.

    Args:
        dataset: the split's records, loaded and encoded per index.
        augment_batch: applied to the collated batch with a generator seeded from (seed, epoch,
            batch number) when given (training).
        seed: the run's seed; each record's `augment_array` generator comes from (seed, epoch,
            index), so a sequence is augmented alike however batches fall on workers or ranks.
        strict: raise a record's one-line error instead of skipping it (evaluation).
    """

    def __init__(
        self,
        dataset: SequenceDataset,
        augment_batch: Callable[[SequenceBatch, torch.Generator], SequenceBatch] | None = None,
        seed: int = 0,
        strict: bool = False,
    ) -> None:
        self.dataset, self.augment_batch = dataset, augment_batch
        self.seed, self.strict = seed, strict

    def __getitem__(self, item: tuple[int, int, list[int]]) -> SequenceBatch:
        epoch, number, indices = item
        examples, skipped = [], []
        training = self.augment_batch is not None
        for index in indices:
            rng = np.random.default_rng([self.seed, epoch, index]) if training else None
            try:
                examples.append(self.dataset.example(index, rng))
            except ValueError as error:
                if self.strict:
                    raise
                where = self.dataset.records[index].where
                skipped.append((where, str(error).removeprefix(f"{where}: ")))
        if not examples:
            return _empty(skipped)
        batch = collate(examples)
        if training:
            state = np.random.SeedSequence([self.seed, epoch, number]).generate_state(1)[0]
            generator = torch.Generator().manual_seed(int(state))
            batch = self.augment_batch(batch, generator)
        if skipped:
            batch = replace(batch, skipped=skipped)
        return batch

    def __len__(self) -> int:  # pragma: no cover - a sampler drives it
        raise TypeError("BatchReader is indexed by its sampler's batches")


def _empty(skipped: list[tuple[str, str]]) -> SequenceBatch:
    return SequenceBatch(ids=[], features=torch.zeros(0, 1, 1), lengths=torch.zeros(0,
                         dtype=torch.int64), pair=None, weights=torch.zeros(0),
                         skipped=skipped)  # fmt: skip


def sequence_loader(
    reader: BatchReader, sampler: LengthSampler, num_workers: int = 0, preemptible: bool = False
) -> torch.utils.data.DataLoader:
    """A DataLoader over the sampler's batches (one `SequenceBatch` per item). Its own
    generator (seeded from the reader's seed) keeps each new iterator from drawing from the
    global generator that dropout uses: a resumed run starts an iterator mid-epoch."""
    return torch.utils.data.DataLoader(
        reader,
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        worker_init_fn=leave_signals_to_the_main_process if preemptible else None,
        generator=torch.Generator().manual_seed(reader.seed),
    )
