"""The `.ts` files of the UCR/UEA classification and Monash TSER regression archives, read into
arrays and written as squeezer sequence manifests.

A `.ts` file has `@key value` header lines, then `@data` and one series per line: each
dimension's comma-separated values, dimensions separated by `:`, the class label (or the
regression target) last. `?` is a missing value (NaN). Lengths may differ between series
(`@equalLength false`) but not between the dimensions of one series.

    squeezer.sequences.ts_format.write_manifest("GunPoint_TRAIN.ts", "data/gunpoint", "train")
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TsSeries", "read_ts", "write_manifest"]


@dataclass(frozen=True)
class TsSeries:
    """One series: values (T, D) float32 (NaN where missing), and its class or target."""

    values: np.ndarray
    label: str | None
    target: float | None


def read_ts(path: str | Path) -> tuple[dict[str, str], list[TsSeries]]:
    """The header (lower-cased keys) and the series of a `.ts` file; ValueError naming the
    file and line for anything that does not parse."""
    path = Path(path)
    header: dict[str, str] = {}
    series: list[TsSeries] = []
    in_data = False
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"{path}:{number}: expected a @key header line")
                key, _, value = line[1:].partition(" ")
                if key.lower() == "data":
                    in_data = True
                else:
                    header[key.lower()] = value.strip()
                continue
            series.append(_series(line, header, f"{path}:{number}"))
    if not series:
        raise ValueError(f"{path}: no series after @data")
    return header, series


def _series(line: str, header: dict[str, str], where: str) -> TsSeries:
    classification = header.get("classlabel", "false").split(" ")[0].lower() == "true"
    regression = header.get("targetlabel", "false").split(" ")[0].lower() == "true"
    parts = line.split(":")
    label = target = None
    if classification or regression:
        parts, answer = parts[:-1], parts[-1].strip()
        if classification:
            label = answer
        else:
            try:
                target = float(answer)
            except ValueError:
                raise ValueError(f"{where}: target {answer!r:.30} is not a number") from None
            if not math.isfinite(target):
                raise ValueError(f"{where}: target {answer!r:.30} is not finite")
    try:
        dims = [[float("nan") if v.strip() == "?" else float(v) for v in part.split(",")]
                for part in parts]  # fmt: skip
    except ValueError:
        raise ValueError(f"{where}: a value is not a number") from None
    if len({len(d) for d in dims}) != 1:
        raise ValueError(f"{where}: the dimensions have different lengths")
    values = np.asarray(dims, dtype=np.float32).T  # (T, D)
    return TsSeries(values, label, target)


def write_manifest(ts_file: str | Path, out_dir: str | Path, split: str) -> Path:
    """Write each series of a classification `ts_file` as `out_dir/<split>/<index>.npy` and
    the manifest `out_dir/<split>.jsonl` with each series' `"label"`; returns its path."""
    out_dir = Path(out_dir)
    _, series = read_ts(ts_file)
    folder = out_dir / split
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, item in enumerate(series):
        name = f"{split}/{index:05d}.npy"
        np.save(out_dir / name, item.values)
        if item.label is None:
            raise ValueError(f"{ts_file}: not a classification file (no @classLabel true)")
        lines.append({"id": f"{split}{index}", "features": name, "label": item.label})
    manifest = out_dir / f"{split}.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest
