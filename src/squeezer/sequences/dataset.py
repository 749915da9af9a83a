"""Sequence records -> padded batches for the three tasks, and batches by length.

`SequenceDataset` loads and checks one record's arrays, standardises its features with the
training split's statistics and encodes its answer: CTC tokens from the character tokenizer,
a class index (or a soft label), or per-position targets. `collate` pads a list of them into a
`SequenceBatch`; `length_batches` groups records of similar length under a budget of padded
positions, as speech batches are grouped by duration.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from squeezer.sequences.manifest import SequenceRecord, TaskKind, load_arrays
from squeezer.sequences.normalize import FeatureStats, write_json

__all__ = [
    "CHARACTERS_FILE",
    "LABELS_FILE",
    "Characters",
    "LabelMap",
    "SequenceBatch",
    "SequenceDataset",
    "SequenceExample",
    "collate",
    "length_batches",
]

LABELS_FILE = "labels.json"
CHARACTERS_FILE = "characters.json"


class LabelMap:
    """Class names <-> indices, fixed by the training split (sorted names)."""

    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError("class names must be distinct and at least one")
        self.names = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def from_records(cls, records: Iterable[SequenceRecord]) -> LabelMap:
        """The classes of the training split: its labels, or as many as its soft labels have."""
        names, width = set(), 0
        for record in records:
            if record.label is not None:
                names.add(record.label)
            elif record.soft_label is not None:
                width = max(width, len(record.soft_label))
        if names and width and width != len(names):
            raise ValueError(
                f"the training split has {len(names)} class names but soft labels of {width}"
            )
        return cls(sorted(names) if names else [str(i) for i in range(width)])

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, record: SequenceRecord) -> int | tuple[float, ...]:
        """The record's class index, or its soft label checked against the class count."""
        if record.soft_label is not None:
            if len(record.soft_label) != len(self.names):
                raise ValueError(
                    f"{record.where}: soft_label has {len(record.soft_label)} values, the model "
                    f"{len(self.names)} classes"
                )
            return record.soft_label
        if record.label not in self.index:
            raise ValueError(f"{record.where}: label {record.label!r:.40} was not in training")
        return self.index[record.label]

    def save(self, directory: str | Path) -> Path:
        return write_json(Path(directory) / LABELS_FILE, {"classes": self.names})

    @classmethod
    def load(cls, directory: str | Path) -> LabelMap:
        path = Path(directory) / LABELS_FILE
        try:
            names = json.loads(path.read_text())["classes"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError
            return cls(names)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no class names") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: not a list of class names") from None


class Characters:
    """The CTC vocabulary of a text task: every character of the training text as written (no
    normalisation: a fingerspelled URL keeps its "/" and its capitals), ids 1..V, blank 0."""

    def __init__(self, symbols: Sequence[str]) -> None:
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError("characters must be distinct and at least one")
        if any(not isinstance(s, str) or len(s) != 1 for s in symbols):
            raise ValueError("characters must be single characters")
        self.symbols = list(symbols)
        self.ids = {symbol: i for i, symbol in enumerate(self.symbols, start=1)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Characters:
        seen = set()
        for text in texts:
            seen.update(text)
        if not seen:
            raise ValueError("the training texts are empty: no characters to learn")
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; ValueError naming the first character not seen in training."""
        unknown = next((c for c in text if c not in self.ids), None)
        if unknown is not None:
            raise ValueError(f"character {unknown!r} was not in the training text")
        return [self.ids[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[i - 1] for i in ids if 1 <= i <= len(self.symbols))

    def save(self, directory: str | Path) -> Path:
        return write_json(Path(directory) / CHARACTERS_FILE, {"characters": self.symbols})

    @classmethod
    def load(cls, directory: str | Path) -> Characters:
        path = Path(directory) / CHARACTERS_FILE
        try:
            symbols = json.loads(path.read_text())["characters"]
            if not isinstance(symbols, list):
                raise TypeError
            return cls(symbols)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no characters") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: not a list of characters") from None


@dataclass(frozen=True)
class SequenceExample:
    """One record, loaded: features (T, F) float32, pair (C, T, T) or None, and the answer."""

    id: str
    features: torch.Tensor
    pair: torch.Tensor | None
    weight: float
    tokens: torch.Tensor | None = None  # ctc: (S,) int64, 1..V
    label: int | tuple[float, ...] | None = None  # classify
    targets: torch.Tensor | None = None  # regress: (T, K), NaN unknown; value: (K,)


@dataclass(frozen=True)
class SequenceBatch:
    """Padded examples. features (B, T, F), zero past each length; lengths (B,); pair
    (B, C, T, T) or None; weights (B,); and the task's answer: tokens (B, S) with
    token_lengths (B,), labels (B,) int64 or (B, classes) soft, targets (B, T, K) with NaN
    wherever unknown or padded (regress), or targets (B, K) (value)."""

    ids: list[str]
    features: torch.Tensor
    lengths: torch.Tensor
    pair: torch.Tensor | None
    weights: torch.Tensor
    tokens: torch.Tensor | None = None
    token_lengths: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, reason), unreadable

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> SequenceBatch:
        """The batch with every tensor on `device`."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}  # fmt: skip
        return replace(self, **moved)


class SequenceDataset(torch.utils.data.Dataset):
    """Records of one task, loaded on access.

    Args:
        records: the split's records (`read_sequences`).
        task: "ctc", "classify" or "regress".
        stats: the training split's feature statistics (None: features as stored).
        labels: the class map (classify).
        tokenizer: a character tokenizer (ctc): `encode(text) -> ids` in 1..V.
        feature_dim: F every record must have (None: whatever the first has).
        nan_to: the value NaN features become (None: NaN is an error).
        augment: `augment_array(features, rng)` applied to the raw features of `example`
            calls given a generator (training).
    """

    def __init__(
        self,
        records: Sequence[SequenceRecord],
        task: TaskKind,
        stats: FeatureStats | None = None,
        labels: LabelMap | None = None,
        tokenizer=None,
        feature_dim: int | None = None,
        nan_to: float | None = None,
        augment=None,
    ) -> None:
        if task == "classify" and labels is None:
            raise ValueError("a classify dataset needs its LabelMap")
        if task == "ctc" and tokenizer is None:
            raise ValueError("a ctc dataset needs its tokenizer")
        self.records, self.task = list(records), task
        self.stats, self.labels, self.tokenizer = stats, labels, tokenizer
        self.nan_to, self.augment = nan_to, augment
        self.feature_dim = feature_dim if feature_dim is not None else (
            None if stats is None else len(stats.mean)
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> SequenceExample:
        return self.example(index)

    def example(self, index: int, rng: np.random.Generator | None = None) -> SequenceExample:
        """Record `index` loaded, checked, augmented (with `rng`), normalised and encoded;
        ValueError naming its line when it is not usable."""
        record = self.records[index]
        arrays = load_arrays(record, self.feature_dim, self.nan_to)
        features = arrays.features
        if rng is not None and self.augment is not None:
            features = self.augment(features, rng)
        if self.stats is not None:
            features = self.stats.apply(features)
        example = dict(
            id=record.id,
            features=torch.from_numpy(features),
            pair=None if arrays.pair is None else torch.from_numpy(arrays.pair),
            weight=record.weight,
        )
        if self.task == "ctc":
            try:
                tokens = self.tokenizer.encode(record.text)
            except ValueError as error:
                raise ValueError(f"{record.where}: {error}") from None
            if not tokens:
                raise ValueError(f"{record.where}: empty text")
            example["tokens"] = torch.tensor(tokens, dtype=torch.int64)
        elif self.task == "classify":
            example["label"] = self.labels.encode(record)
        elif self.task == "regress":
            example["targets"] = torch.from_numpy(arrays.targets)
        elif self.task == "value":
            example["targets"] = torch.tensor(record.value, dtype=torch.float32)  # (K,)
        else:
            raise ValueError(f"task={self.task!r} is not one of ctc, classify, regress, value")
        return SequenceExample(**example)


def collate(examples: Sequence[SequenceExample]) -> SequenceBatch:
    """Pad examples into a batch (see `SequenceBatch`)."""
    lengths = torch.tensor([e.features.size(0) for e in examples], dtype=torch.int64)
    B, T, F = len(examples), int(lengths.max()), examples[0].features.size(1)
    features = torch.zeros(B, T, F)
    for row, example in enumerate(examples):
        features[row, : example.features.size(0)] = example.features
    batch = dict(
        ids=[e.id for e in examples],
        features=features,
        lengths=lengths,
        pair=_pad_pairs(examples, T),
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
    )
    first = examples[0]
    if first.tokens is not None:
        batch["token_lengths"] = torch.tensor([e.tokens.numel() for e in examples])
        batch["tokens"] = torch.nn.utils.rnn.pad_sequence([e.tokens for e in examples],
                                                          batch_first=True)  # fmt: skip
    elif first.label is not None:
        batch["labels"] = _labels([e.label for e in examples])
    elif first.targets is not None and first.targets.dim() == 1:  # value: (K,) per sequence
        widths = {e.targets.numel() for e in examples}
        if len(widths) > 1:
            raise ValueError(f"values of {sorted(widths)} numbers in one split")
        batch["targets"] = torch.stack([e.targets for e in examples])  # (B, K)
    elif first.targets is not None:
        targets = torch.full((B, T, first.targets.size(1)), float("nan"))
        for row, example in enumerate(examples):
            targets[row, : example.targets.size(0)] = example.targets
        batch["targets"] = targets
    return SequenceBatch(**batch)


def _pad_pairs(examples: Sequence[SequenceExample], T: int) -> torch.Tensor | None:
    if all(e.pair is None for e in examples):
        return None
    if any(e.pair is None for e in examples):
        missing = next(e.id for e in examples if e.pair is None)
        raise ValueError(f"sequence {missing} has no pair matrix, others in its split have")
    channels = {e.pair.size(0) for e in examples}
    if len(channels) > 1:
        raise ValueError(f"pair matrices with {sorted(channels)} channels in one split")
    pair = torch.zeros(len(examples), channels.pop(), T, T)
    for row, example in enumerate(examples):
        n = example.pair.size(-1)
        pair[row, :, :n, :n] = example.pair
    return pair


def _labels(labels: list[int | tuple[float, ...]]) -> torch.Tensor:
    """Class indices (B,), or soft labels (B, C) when any label in the batch is soft."""
    soft = [label for label in labels if isinstance(label, tuple)]
    if not soft:
        return torch.tensor(labels, dtype=torch.int64)
    classes = len(soft[0])
    rows = [label if isinstance(label, tuple) else np.eye(classes)[label] for label in labels]
    return torch.tensor(np.asarray(rows), dtype=torch.float32)


def length_batches(
    lengths: Sequence[int], max_positions: int, shuffle: bool, seed: int = 0
) -> list[list[int]]:
    """Indices grouped by similar length, each batch's padded size (B x longest) at most
    `max_positions` (a longer sequence goes alone). Shuffled: the order within buckets of
    similar length and the order of the batches, both from `seed`."""
    if max_positions < 1:
        raise ValueError(f"max_positions={max_positions} must be positive")
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random() if shuffle else i))
    batches, current, longest = [], [], 0
    for index in order:
        grown = max(longest, lengths[index])
        if current and grown * (len(current) + 1) > max_positions:
            batches.append(current)
            current, grown = [], lengths[index]
        current.append(index)
        longest = grown
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches
