"""Training a sequence task with the loop speech shares (`squeezer.training.loop`):
`SequenceTrainer` provides only what a task must (data, model, loader, loss, dev scoring, model
directory), so checkpoints, exact resume, preemption, the non-finite step skip, EMA, bf16 and
torchrun are the same code as speech's. Nothing here imports the speech stack.

    squeezer train RECIPE.yaml --out runs/x [--set ...] [--resume]    (a recipe with `task:`)

The run directory is the speech run's: `config.yaml`, `checkpoints/`, `metrics.jsonl` (dev
metrics are `dev_cer`, `dev_accuracy`, `dev_mae`, ...), `model/`, and `assets/`: the feature
statistics and vocabulary fitted on the training split when the run started, which a resumed
run reads back instead of fitting again.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from squeezer.nn import losses
from squeezer.sequences.augment import augment_array, augment_batch
from squeezer.sequences.dataset import Characters, LabelMap, SequenceBatch, SequenceDataset
from squeezer.sequences.evaluate import score
from squeezer.sequences.loader import BatchReader, LengthSampler, probe_lengths, sequence_loader
from squeezer.sequences.manifest import SequenceRecord, load_arrays, read_sequences
from squeezer.sequences.model import (
    SequenceAssets,
    SequenceModel,
    load_assets,
    model_from_settings,
    save_sequence_model,
    settings,
)
from squeezer.sequences.normalize import FeatureStats
from squeezer.sequences.recipe import SequenceTrainConfig
from squeezer.training.checkpoints import Checkpoint
from squeezer.training.distributed import barrier
from squeezer.training.loop import TrainingLoop

__all__ = ["SequenceTrainer", "train_sequences"]

log = logging.getLogger("squeezer.training")


@dataclass
class DataReport:
    """Training sequences left out before training, by reason."""

    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in self.dropped.items()) or "none dropped"


@dataclass
class TrainingSplit:
    """The training manifest's records, their lengths (None: unreadable), the indices of those
    that can be trained on, and the count of the others by reason."""

    records: list[SequenceRecord]
    lengths: list[int | None]
    usable: list[int]
    dropped: Counter


class SequenceTrainer(TrainingLoop):
    """The shared loop with a sequence task's data, model, loss and scoring."""

    unreadable = "sequence"
    _dev_lengths: list[int] | None = None  # the dev split's lengths, probed at the first score

    def _read_training_data(self, config: SequenceTrainConfig) -> tuple[TrainingSplit, Counter]:
        records = read_sequences(config.data.train, config.task)
        lengths, dropped = probe_lengths(records, strict=False)
        longest, usable = config.data.max_length, []
        for index, length in enumerate(lengths):
            if length is None:
                continue
            if longest is not None and length > longest:
                dropped["longer than data.max_length"] += 1
                continue
            usable.append(index)
        if not usable:
            raise ValueError(
                f"{config.data.train}: no sequence is usable for training "
                f"({DataReport(dropped).summary()})"
            )
        return TrainingSplit(records, lengths, usable, dropped), Counter()

    def _read_dev_data(self) -> list[SequenceRecord] | None:
        dev = self.config.data.dev
        return read_sequences(dev, self.config.task) if dev else None

    # -- the model and what it needs beside its weights ----------------------------------

    def _build(
        self, config: SequenceTrainConfig, split: TrainingSplit, checkpoint: Checkpoint | None
    ) -> tuple[SequenceTrainConfig, SequenceModel, SequenceAssets]:
        assets_dir = self.out_dir / "assets"
        if checkpoint is not None:
            values = checkpoint.state.get("settings")
            if not isinstance(values, dict):
                raise ValueError(f"{checkpoint.path}: not a sequence-task checkpoint")
            model = model_from_settings(values, str(checkpoint.path))
            return config, model, load_assets(assets_dir, model, values)
        usable = split.usable
        first = split.records[usable[0]]
        arrays = load_arrays(first, nan_to=config.data.nan_to)
        input_dim = arrays.features.shape[1]
        assets = SequenceAssets(self._fit_stats(config, split, usable, input_dim),
                                nan_to=config.data.nan_to)  # fmt: skip
        if config.task == "ctc":
            assets.tokenizer = Characters.from_texts(split.records[i].text for i in usable)
            outputs = assets.tokenizer.vocab_size
        elif config.task == "classify":
            assets.labels = LabelMap.from_records(split.records[i] for i in usable)
            outputs = len(assets.labels)
        elif config.task == "regress":
            outputs = arrays.targets.shape[1]
        else:
            outputs = len(first.value)
        pair_channels = 0 if arrays.pair is None else arrays.pair.shape[0]
        model = SequenceModel(config.task, config.encoder_config(input_dim), outputs, config.head,
                              pair_channels)  # fmt: skip
        if config.task == "value":
            values = torch.tensor([split.records[i].value for i in usable], dtype=torch.float64)
            std = values.std(0, unbiased=False)
            model.target_mean.copy_(values.mean(0))
            model.target_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))
        if self.dist.is_main:
            assets_dir.mkdir(parents=True, exist_ok=True)
            assets.save(assets_dir)
        barrier()
        return config, model, assets

    def _fit_stats(
        self, config: SequenceTrainConfig, split: TrainingSplit, usable: list[int], dim: int
    ) -> FeatureStats | None:
        """The training split's feature statistics (None when data.normalize is off); a
        sequence whose arrays are unusable adds nothing (it is skipped when training reaches
        it)."""
        if not config.data.normalize:
            return None

        def arrays():
            for index in usable:
                try:
                    yield load_arrays(split.records[index], dim, config.data.nan_to).features
                except ValueError:
                    continue

        return FeatureStats.fit(arrays())

    def _param_groups(self) -> list[dict[str, Any]]:
        """The loop's one group, with PairBias apart at `head.pair_lr_scale` x the rate."""
        pair = [] if self.model.pair_bias is None else list(self.model.pair_bias.parameters())
        rest = [p for p in self.model.parameters() if all(p is not q for q in pair)]
        groups = [{"params": rest}]
        if pair:
            lr = self.config.optim.peak_lr * self.config.head.pair_lr_scale
            groups.append({"params": pair, "lr": lr})
        return groups

    def _settings(self) -> dict[str, Any]:
        return settings(self.model, self.tokenizer)

    def _save_final(self, weights: dict[str, torch.Tensor], directory: Path) -> None:
        final = model_from_settings(self._settings())
        final.load_state_dict(weights)
        save_sequence_model(final, self.tokenizer, directory)

    # -- the data ------------------------------------------------------------------------

    def _training_loader(self, split: TrainingSplit, manifest_skips: Counter):
        config, assets, model = self.config, self.tokenizer, self.model
        usable = split.usable
        if config.task == "ctc":
            usable = self._alignable(usable, split)
        augment = config.augment
        raw = partial(_augment_array, config=augment)
        if augment.stretch is None and not augment.mirror_columns:
            raw = None
        dataset = SequenceDataset(split.records, config.task, assets.stats, assets.labels,
                                  assets.tokenizer, feature_dim=model.config.input_dim,
                                  nan_to=config.data.nan_to, augment=raw)  # fmt: skip
        batch_augment = partial(_augment_batch, config=augment, num_classes=model.outputs)
        reader = BatchReader(dataset, batch_augment, seed=config.run.seed)
        lengths = [length or 0 for length in split.lengths]
        if augment.stretch is not None:  # batches are sized for the longest a stretch can make
            lengths = [int(np.ceil(length * augment.stretch[1])) for length in lengths]
        sampler = LengthSampler(lengths, usable, config.data.max_positions, shuffle=True,
                                seed=config.run.seed, rank=self.dist.rank,
                                world_size=self.dist.world_size)  # fmt: skip
        report = DataReport(split.dropped)
        if self.dist.is_main:
            log.info("training data: %d sequences; dropped: %s", len(usable), report.summary())
        loader = sequence_loader(reader, sampler, config.data.num_workers, preemptible=True)
        return loader, report

    def _alignable(self, usable: list[int], split: TrainingSplit) -> list[int]:
        """CTC needs at least one output frame per token and one between repeats: sequences
        too short for their text (after the shortest stretch) are counted and left out."""
        shortest = self.config.augment.stretch[0] if self.config.augment.stretch else 1.0
        kept = []
        for index in usable:
            record = split.records[index]
            length = max(1, round(split.lengths[index] * min(shortest, 1.0)))
            frames = int(self.model.output_lengths(torch.tensor([length]))[0])
            text = record.text
            needed = len(text) + sum(text[i] == text[i - 1] for i in range(1, len(text)))
            if frames < needed:
                split.dropped["too short for its text"] += 1
                continue
            kept.append(index)
        if not kept:
            raise ValueError(f"{self.config.data.train}: every sequence is too short for its text")
        return kept

    def _augmenter(self) -> None:
        return None  # augmentation happens in the loader (`BatchReader`)

    def _count_skipped(self, batch: SequenceBatch) -> None:
        for where, reason in batch.skipped:
            log.warning("skipped %s: %s", where, reason)
            self.state.skipped[reason] = self.state.skipped.get(reason, 0) + 1

    # -- the loss and dev scoring --------------------------------------------------------

    def _loss(self, batch: SequenceBatch) -> torch.Tensor:
        values, lengths = self.ddp(batch.features, batch.lengths, batch.pair)
        scale = self.model.target_std if self.config.task == "value" else None
        return task_loss(self.config.task, values, lengths, batch, scale)

    def _evaluate_dev(self, trained_s: float) -> None:
        if self.dev_data is None:
            return
        if self._dev_lengths is None:  # the headers are read once per run, not per checkpoint
            self._dev_lengths, _ = probe_lengths(self.dev_data, strict=True)
        self.model.eval()
        with torch.random.fork_rng(devices=[]):
            try:
                metrics = score(self._backend, self.config.task, self.tokenizer, self.dev_data,
                                self.config.data.max_positions, self.model.config.input_dim,
                                self._dev_lengths)  # fmt: skip
            finally:
                self._train_mode()
        record = {"step": self.state.step, "time_s": round(trained_s, 1)}
        record.update({f"dev_{k}": v for k, v in metrics.items() if k != "sequences"})
        self.metrics.write(record)

    def _backend(self, features, lengths, pair):
        device = self.dist.device
        pair = None if pair is None else pair.to(device)
        return self.model(features.to(device), lengths.to(device), pair)


def _augment_array(features: np.ndarray, rng: np.random.Generator, config) -> np.ndarray:
    return augment_array(features, config, rng)


def _augment_batch(batch: SequenceBatch, generator: torch.Generator, config, num_classes: int):
    return augment_batch(batch, config, generator, num_classes) if config.active else batch


def task_loss(
    task: str,
    values: torch.Tensor,
    lengths: torch.Tensor,
    batch: SequenceBatch,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """The task's loss, weighted by each sequence's `weight`: CTC per target token averaged
    over sequences, cross-entropy (soft labels included), L1 over the known targets (regress),
    squared error over `scale` (value: the training targets' standard deviation)."""
    weights = batch.weights
    if task == "ctc":
        per_sequence = F.ctc_loss(values.float().transpose(0, 1), batch.tokens, lengths,
                                  batch.token_lengths, reduction="none")  # fmt: skip
        per_sequence = per_sequence / batch.token_lengths.clamp(min=1)
        return (per_sequence * weights).sum() / weights.sum().clamp(min=1e-12)
    if task == "classify":
        return losses.classification_loss(values, batch.labels, weights=weights)
    if task == "value":  # squared error in units of the training split's target scale
        per_sequence = ((values - batch.targets) / scale).square().mean(-1)  # (B,)
        return (per_sequence * weights).sum() / weights.sum().clamp(min=1e-12)
    return losses.position_regression_loss(values, batch.targets, lengths,
                                           sequence_weights=weights)  # fmt: skip


def train_sequences(config: SequenceTrainConfig, out_dir: str | Path, resume: bool = False) -> Path:
    """Run a sequence recipe into `out_dir`; with `resume`, from its latest checkpoint."""
    return SequenceTrainer(config, Path(out_dir), resume).fit()
