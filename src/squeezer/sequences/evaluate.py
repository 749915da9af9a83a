"""Run a sequence model over a manifest and score it: the task's metrics, and predictions.

    ctc       CER (character edits / reference characters) and the ASL competitions' normalised
              Levenshtein, (N - D) / N over the whole split; greedy decoding
    classify  accuracy, log-loss (cross-entropy to the labels, soft labels included)
    regress   MAE per target and overall over the known (non-NaN) targets, and RMSE
    value     the same over sequences

`run_model` yields each batch's outputs from any backend that maps (features, lengths, pair)
to (values, lengths) (`squeezer.sequences.backends`), so PyTorch, ONNX Runtime and LiteRT are
scored by the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from squeezer.sequences.dataset import Characters, SequenceBatch, SequenceDataset
from squeezer.sequences.loader import BatchReader, LengthSampler, probe_lengths
from squeezer.sequences.manifest import SequenceRecord
from squeezer.sequences.model import SequenceAssets

__all__ = [
    "BatchOutput",
    "Scores",
    "check_unique_ids",
    "edit_distance",
    "greedy_tokens",
    "run_model",
    "score",
]

# (features (B, T, F), lengths (B,), pair (B, C, T, T) or None) -> (values, lengths)
Backend = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]
]


@dataclass
class BatchOutput:
    """One batch and the model's outputs for it (float32, on the CPU)."""

    batch: SequenceBatch
    values: torch.Tensor
    lengths: torch.Tensor


def run_model(
    backend: Backend,
    task: str,
    assets: SequenceAssets,
    records: Sequence[SequenceRecord],
    max_positions: int = 16384,
    feature_dim: int | None = None,
    lengths: Sequence[int] | None = None,
) -> Iterator[BatchOutput]:
    """The backend's outputs for every record, batched by length, in no particular order.
    A record that cannot be used is a one-line ValueError naming its line. `lengths`: the
    records' lengths when the caller has them (`probe_lengths`), else they are probed here."""
    if lengths is None:
        lengths, _ = probe_lengths(records, strict=True)
    dataset = SequenceDataset(records, task, assets.stats, assets.labels, assets.tokenizer,
                              feature_dim=feature_dim, nan_to=assets.nan_to)  # fmt: skip
    sampler = LengthSampler(lengths, range(len(records)), max_positions, shuffle=False)
    reader = BatchReader(dataset, strict=True)
    for item in sampler:
        batch = reader[item]
        with torch.inference_mode():
            values, out_lengths = backend(batch.features, batch.lengths, batch.pair)
        yield BatchOutput(batch, values.float().cpu(), out_lengths.cpu())


def greedy_tokens(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best token per frame, repeats merged, blanks (0) dropped; (B, T, V + 1) -> B lists."""
    best = log_probs.argmax(-1)
    out = []
    for row, length in zip(best, lengths.tolist(), strict=True):
        path = row[:length].tolist()
        out.append([t for i, t in enumerate(path) if t != 0 and (i == 0 or path[i - 1] != t)])
    return out


def edit_distance(reference: str, hypothesis: str) -> int:
    """Levenshtein distance between two strings (insertions, deletions, substitutions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, start=1):
        current = [i]
        for j, h in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


@dataclass
class Scores:
    """Sums that make the task's metrics; `add` one batch, `metrics()` at the end."""

    task: str
    sequences: int = 0
    edits: int = 0
    characters: int = 0
    correct: int = 0
    log_loss_sum: float = 0.0
    abs_sum: list[float] = field(default_factory=list)
    sq_sum: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def add(
        self,
        output: BatchOutput,
        references: Sequence[str] | None = None,
        hypotheses: Sequence[str] | None = None,
    ) -> None:
        """One batch; ctc needs its reference and hypothesis texts."""
        batch, values = output.batch, output.values
        self.sequences += len(batch)
        if self.task == "ctc":
            for reference, hypothesis in zip(references, hypotheses, strict=True):
                self.edits += edit_distance(reference, hypothesis)
                self.characters += len(reference)
        elif self.task == "classify":
            log_probs = values.log_softmax(-1)
            labels = batch.labels
            if labels.dim() == 1:
                self.correct += int((values.argmax(-1) == labels).sum())
                self.log_loss_sum += float(-log_probs.gather(1, labels[:, None]).sum())
            else:
                self.correct += int((values.argmax(-1) == labels.argmax(-1)).sum())
                self.log_loss_sum += float(-(labels * log_probs).sum())
        else:
            targets = batch.targets  # (B, T, K) NaN unknown or padded; value: (B, K)
            known = ~torch.isnan(targets)
            error = torch.where(known, values - torch.nan_to_num(targets), 0.0).double()
            if not self.counts:
                K = targets.size(-1)
                self.abs_sum, self.sq_sum, self.counts = [0.0] * K, [0.0] * K, [0] * K
            for k in range(targets.size(-1)):
                self.abs_sum[k] += float(error[..., k].abs().sum())
                self.sq_sum[k] += float(error[..., k].square().sum())
                self.counts[k] += int(known[..., k].sum())

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"sequences": self.sequences}
        if self.task == "ctc":
            cer = self.edits / max(self.characters, 1)
            out.update(cer=cer, normalized_levenshtein=1.0 - cer, characters=self.characters)
        elif self.task == "classify":
            out.update(accuracy=self.correct / max(self.sequences, 1),
                       log_loss=self.log_loss_sum / max(self.sequences, 1))  # fmt: skip
        else:
            total = max(sum(self.counts), 1)
            out["mae"] = sum(self.abs_sum) / total
            out["rmse"] = math.sqrt(sum(self.sq_sum) / total)
            for k, (a, n) in enumerate(zip(self.abs_sum, self.counts, strict=True)):
                out[f"mae_{k}"] = a / n if n else float("nan")
        return out


def texts_of(output: BatchOutput, vocabulary: Characters) -> list[str]:
    """Greedy transcripts of a ctc batch."""
    return [vocabulary.decode(ids) for ids in greedy_tokens(output.values, output.lengths)]


def score(
    backend: Backend,
    task: str,
    assets: SequenceAssets,
    records: Sequence[SequenceRecord],
    max_positions: int = 16384,
    feature_dim: int | None = None,
    lengths: Sequence[int] | None = None,
) -> dict[str, float]:
    """The task's metrics of `backend` on `records` (see the module's docstring); `lengths`
    as for `run_model`."""
    check_unique_ids(records)
    scores = Scores(task)
    by_id = {record.id: record for record in records}
    outputs = run_model(backend, task, assets, records, max_positions, feature_dim, lengths)
    for output in outputs:
        if task == "ctc":
            references = [by_id[i].text for i in output.batch.ids]
            scores.add(output, references, texts_of(output, assets.tokenizer))
        else:
            scores.add(output)
    return scores.metrics()


def check_unique_ids(records: Sequence[SequenceRecord]) -> None:
    """ValueError naming the second line of the first id used twice."""
    seen: dict[str, str] = {}
    for record in records:
        if record.id in seen:
            raise ValueError(f"{record.where}: id {record.id!r:.40} is also {seen[record.id]}")
        seen[record.id] = record.where
