"""Predictions of a sequence model for a manifest, as a table (CSV or Parquet).

    ctc       one row per sequence: id, text
    classify  one row per sequence: id, label, and p_<class> for every class
    regress   one row per position: id, position, and target_<k> for every target
    value     one row per sequence: id, and value_<k> for every value

Rows come in manifest order whatever the batching, and the table is written atomically (a
temporary file renamed), so an interrupted run leaves no half table.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from squeezer.files import replaced_atomically
from squeezer.sequences.backends import LoadedBackend
from squeezer.sequences.evaluate import Scores, check_unique_ids, greedy_tokens, run_model
from squeezer.sequences.manifest import SequenceRecord

__all__ = ["predict", "write_table"]


def predict(
    backend: LoadedBackend,
    records: Sequence[SequenceRecord],
    max_positions: int = 16384,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (see the module's docstring) and a summary: sequences, seconds, and the task's
    metrics when every record carries its answer."""
    check_unique_ids(records)
    task, assets = backend.task, backend.assets
    answered = all(_has_answer(record, task) for record in records)
    order = {record.id: index for index, record in enumerate(records)}
    by_id = {record.id: record for record in records}
    rows: list[list[dict[str, Any]]] = [[] for _ in records]
    scores = Scores(task)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(records), desc="predict", unit="seq")
    start = time.perf_counter()
    outputs = run_model(backend.run, task, assets, records, max_positions, backend.input_dim)
    for output in outputs:
        texts = None
        if task == "ctc":
            texts = [assets.tokenizer.decode(ids) for ids in
                     greedy_tokens(output.values, output.lengths)]  # fmt: skip
        for row, sequence_id in enumerate(output.batch.ids):
            rows[order[sequence_id]] = _rows(task, assets, output, row, sequence_id, texts)
        if answered:
            references = [by_id[i].text for i in output.batch.ids] if task == "ctc" else None
            scores.add(output, references, texts)
        if bar is not None:
            bar.update(len(output.batch))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    rate = round(len(records) / max(seconds, 1e-9), 2)
    summary: dict[str, Any] = {"sequences": len(records), "seconds": round(seconds, 3),
                               "sequences_per_s": rate}  # fmt: skip
    if answered:
        summary["metrics"] = scores.metrics()
    return [row for group in rows for row in group], summary


def _has_answer(record: SequenceRecord, task: str) -> bool:
    if task == "ctc":
        return record.text is not None
    if task == "classify":
        return record.label is not None or record.soft_label is not None
    if task == "value":
        return record.value is not None
    return record.targets is not None


def _rows(task, assets, output, row, sequence_id, texts) -> list[dict[str, Any]]:
    values = output.values[row]
    if task == "ctc":
        return [{"id": sequence_id, "text": texts[row]}]
    if task == "classify":
        probabilities = values.softmax(-1).tolist()
        names = assets.labels.names
        best = max(range(len(names)), key=probabilities.__getitem__)
        columns = {f"p_{name}": p for name, p in zip(names, probabilities, strict=True)}
        return [{"id": sequence_id, "label": names[best], **columns}]
    if task == "value":
        return [{"id": sequence_id, **{f"value_{k}": float(v) for k, v in enumerate(values)}}]
    length = int(output.batch.lengths[row])
    return [{"id": sequence_id, "position": t,
             **{f"target_{k}": float(v) for k, v in enumerate(values[t].tolist())}}
            for t in range(length)]  # fmt: skip


def write_table(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as `.csv` or `.parquet` (by the suffix), atomically."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: predictions are written as .csv or .parquet")
    if path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(
                f"{path}: writing Parquet needs pyarrow: pip install 'squeezer[sequences]'",
                name=error.name,
            ) from None
    with replaced_atomically(path) as temporary:
        if path.suffix == ".csv":
            with temporary.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["id"])
                writer.writeheader()
                writer.writerows(rows)
        else:
            pq.write_table(pa.Table.from_pylist(rows), temporary)
    return path
