"""Manifests of non-audio sequences: one JSON object per line, or a Parquet table.

A JSONL line names a `.npy` file of features (T x F) and the sequence's answer for the task,
with array paths relative to the manifest's folder (as speech manifests have them):

    {"features": "seq/0001.npy", "text": "hello"}                      ctc
    {"features": "seq/0001.npy", "label": "walking"}                   classify
    {"features": "seq/0001.npy", "soft_label": [0.1, 0.9]}             classify, soft
    {"features": "seq/0001.npy", "targets": "seq/0001_targets.npy"}    regress (T x K, NaN unknown)
    {"features": "seq/0001.npy", "value": 0.37}                        value (or [v1, ..., vK])

Any line may add `"pair": "seq/0001_pair.npy"` ((T, T) or (C, T, T), fed to `PairBias`),
`"weight": 2.0` (the sequence's weight in the loss) and `"id"`. A Parquet table (Kaggle ships
data so) has the same columns, with arrays inline as nested lists.

Reading checks every line's structure and names `file:line` in a one-line `ValueError` when one
is wrong; the arrays are checked when they are loaded (`load_arrays`), again naming the line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["SequenceArrays", "SequenceRecord", "TaskKind", "load_arrays", "read_sequences"]

TaskKind = Literal["ctc", "classify", "regress", "value"]
TASKS = ("ctc", "classify", "regress", "value")
ARRAY_KEYS = ("features", "targets", "pair")
KNOWN_KEYS = {"id", "features", "text", "label", "soft_label", "targets", "value", "pair", "weight"}

ArrayRef = Path | np.ndarray  # a .npy file, or an array read inline from Parquet


@dataclass(frozen=True)
class SequenceRecord:
    """One line of a manifest: where it is, its arrays (files or inline) and its answer."""

    where: str  # "manifest.jsonl:12", for messages
    id: str
    features: ArrayRef
    text: str | None = None
    label: str | None = None
    soft_label: tuple[float, ...] | None = None
    targets: ArrayRef | None = None
    value: tuple[float, ...] | None = None  # task "value": K numbers for the whole sequence
    pair: ArrayRef | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class SequenceArrays:
    """A record's arrays, checked: features (T, F) float32, targets (T, K) float32 with NaN
    for unknown, pair (C, T, T) float32."""

    features: np.ndarray
    targets: np.ndarray | None
    pair: np.ndarray | None


def read_sequences(path: str | Path, task: TaskKind, answers: bool = True) -> list[SequenceRecord]:
    """Every record of a `.jsonl` or `.parquet` manifest for `task`, structure checked; with
    `answers` False (prediction) a record may leave its answer out."""
    path = Path(path)
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {', '.join(TASKS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    if path.suffix == ".parquet":
        rows = _parquet_rows(path)
    elif path.suffix in (".jsonl", ".json"):
        rows = _jsonl_rows(path)
    else:
        raise ValueError(f"{path}: a sequence manifest is a .jsonl or .parquet file")
    records = [_record(row, where, path.parent, task, answers) for where, row in rows]
    if not records:
        raise ValueError(f"{path}: no sequences")
    return records


def _jsonl_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{path}:{number}"
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ValueError(f"{where}: not UTF-8 text") from None
            if not text:
                continue
            try:
                row = json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                raise ValueError(f"{where}: not a JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: not a JSON object")
            rows.append((where, row))
    return rows


def _parquet_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"{path}: reading Parquet needs pyarrow: pip install 'squeezer[sequences]'",
            name=error.name,
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises its own types for a damaged file
        raise ValueError(f"{path}: not a readable Parquet table ({type(error).__name__})") from None
    return [(f"{path}:row {index}", row) for index, row in enumerate(table.to_pylist())]


def _record(
    row: dict[str, Any], where: str, base: Path, task: TaskKind, answers: bool = True
) -> SequenceRecord:
    unknown = sorted(set(row) - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    answer = {"ctc": ("text",), "classify": ("label", "soft_label"), "regress": ("targets",),
              "value": ("value",)}[task]  # fmt: skip
    given = [key for key in answer if row.get(key) is not None]
    if len(given) > 1 or (answers and not given):
        raise ValueError(f"{where}: a {task} sequence needs exactly one of {', '.join(answer)}")
    text = _string(row, "text", where)
    label = _string(row, "label", where)
    soft = row.get("soft_label")
    if soft is not None:
        soft = _soft_label(soft, where)
    value = row.get("value")
    if value is not None:
        value = _value(value, where)
    weight = row.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(
        weight
    ) or weight < 0:  # fmt: skip
        raise ValueError(f"{where}: weight must be a finite number >= 0, got {weight!r:.40}")
    return SequenceRecord(
        where=where,
        id=str(row.get("id", where.rsplit(":", 1)[-1])),
        features=_array_ref(row, "features", where, base, required=True),
        text=text,
        label=label,
        soft_label=soft,
        targets=_array_ref(row, "targets", where, base),
        value=value,
        pair=_array_ref(row, "pair", where, base),
        weight=float(weight),
    )


def _string(row: dict[str, Any], key: str, where: str) -> str | None:
    value = row.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a string, got {type(value).__name__}")
    return value


def _soft_label(value: Any, where: str) -> tuple[float, ...]:
    try:
        probabilities = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: soft_label must be a list of numbers") from None
    if probabilities.ndim != 1 or probabilities.size < 2:
        raise ValueError(f"{where}: soft_label must be a list of at least 2 numbers")
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError(f"{where}: soft_label must hold finite numbers >= 0")
    total = probabilities.sum()
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"{where}: soft_label sums to {total:.4g}, not 1")
    return tuple(float(p) for p in probabilities / total)


def _value(value: Any, where: str) -> tuple[float, ...]:
    """A sequence's target: a number, or a list of numbers, all finite."""
    numbers = value if isinstance(value, list) else [value]
    if not numbers or any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
        raise ValueError(f"{where}: value must be a number or a list of numbers")
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{where}: value must be finite")
    return tuple(float(v) for v in numbers)


def _array_ref(
    row: dict[str, Any], key: str, where: str, base: Path, required: bool = False
) -> ArrayRef | None:
    value = row.get(key)
    if value is None:
        if required:
            raise ValueError(f"{where}: no {key}")
        return None
    if isinstance(value, str):
        path = base / value
        if path.suffix != ".npy":
            raise ValueError(f"{where}: {key} must name a .npy file, got {value!r:.60}")
        if not path.is_file():
            raise ValueError(f"{where}: {key} file {value!r:.60} does not exist")
        return path
    if isinstance(value, list):  # inline, from Parquet (or a small JSON array)
        try:
            return np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key} is not a rectangular array of numbers") from None
    raise ValueError(f"{where}: {key} must be a .npy path or an array, got {type(value).__name__}")


def load_arrays(
    record: SequenceRecord, feature_dim: int | None = None, nan_to: float | None = None
) -> SequenceArrays:
    """The record's arrays, each checked against the others; errors name the record's line.

    features must be (T, F) with T >= 1 and finite values (F = feature_dim when given; with
    `nan_to`, NaN features, such as a landmark the tracker lost, become that value);
    targets (T, K) or (T,) (NaN allowed: unknown); pair (T, T) or (C, T, T), finite.
    """
    features = _load(record.features, "features", record.where)
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"{record.where}: features must be (T, F), got {features.shape}")
    if feature_dim is not None and features.shape[1] != feature_dim:
        raise ValueError(
            f"{record.where}: features have {features.shape[1]} values per position, "
            f"the model takes {feature_dim}"
        )
    if nan_to is not None:
        features = np.where(np.isnan(features), np.float32(nan_to), features)
    if not np.all(np.isfinite(features)):
        hint = "" if nan_to is not None else " (data.nan_to replaces NaN)"
        raise ValueError(f"{record.where}: features hold NaN or inf{hint}")
    T = features.shape[0]
    targets = None
    if record.targets is not None:
        targets = _load(record.targets, "targets", record.where)
        if targets.ndim == 1:
            targets = targets[:, None]
        if targets.ndim != 2 or targets.shape[0] != T:
            raise ValueError(f"{record.where}: targets must be ({T}, K), got {targets.shape}")
        if np.any(np.isinf(targets)):
            raise ValueError(f"{record.where}: targets hold inf (NaN marks unknown)")
    pair = None
    if record.pair is not None:
        pair = _load(record.pair, "pair", record.where)
        if pair.ndim == 2:
            pair = pair[None]
        if pair.ndim != 3 or pair.shape[1:] != (T, T):
            raise ValueError(
                f"{record.where}: pair must be ({T}, {T}) or (C, {T}, {T}) for {T} positions, "
                f"got {pair.shape}"
            )
        if not np.all(np.isfinite(pair)):
            raise ValueError(f"{record.where}: pair holds NaN or inf")
    return SequenceArrays(features, targets, pair)


def open_array(ref: ArrayRef, key: str, where: str, header_only: bool = False) -> np.ndarray:
    """The array `ref` names (memory-mapped when `header_only`: its shape without reading its
    data); ValueError naming the line when the file is not a readable `.npy`."""
    if isinstance(ref, np.ndarray):
        return ref
    try:
        return np.load(ref, mmap_mode="r" if header_only else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        reason = str(error).splitlines()[0][:80] if str(error) else type(error).__name__
        raise ValueError(
            f"{where}: {key} file {ref.name} is not a readable .npy ({reason})"
        ) from None


def _load(ref: ArrayRef, key: str, where: str) -> np.ndarray:
    array = open_array(ref, key, where)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        kind = getattr(array, "dtype", type(array).__name__)
        raise ValueError(f"{where}: {key} must be numbers, got {kind}")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, which the callers refuse
        return np.ascontiguousarray(array, dtype=np.float32)
