"""Per-feature standardisation fitted on the training split and saved with the model.

Kaggle's sequences come in raw units (landmark coordinates, sensor counts, reactivities); the
statistics are fitted once, on the training sequences only, so that the validation and test
splits and inference see exactly the transform training saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from squeezer.files import write_text_atomically

__all__ = ["STATS_FILE", "FeatureStats", "write_json"]

STATS_FILE = "feature_stats.json"


def write_json(path: Path, value: object) -> Path:
    """Write `value` as JSON to `path` through a temporary file: never half a file."""
    return write_text_atomically(path, json.dumps(value, indent=1) + "\n")


@dataclass(frozen=True)
class FeatureStats:
    """Mean and standard deviation of each of F features over every position of a split.

    A feature that never varies keeps a scale of 1 (it is centred, not blown up).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    positions: int

    @classmethod
    def fit(cls, arrays: Iterable[np.ndarray]) -> FeatureStats:
        """Fit on (T, F) arrays, streamed: one pass, float64, merged per array (Chan et al.
        1979), so that a long split neither fills memory nor loses digits in a sum of squares.
        """
        count, mean, m2 = 0, None, None
        for array in arrays:
            x = np.asarray(array, dtype=np.float64)
            n = x.shape[0]
            if n == 0:
                continue
            batch_mean = x.mean(axis=0)
            batch_m2 = ((x - batch_mean) ** 2).sum(axis=0)
            if mean is None:
                count, mean, m2 = n, batch_mean, batch_m2
                continue
            if x.shape[1] != mean.shape[0]:
                raise ValueError(
                    f"feature statistics: an array has {x.shape[1]} features, others "
                    f"{mean.shape[0]}"
                )
            total = count + n
            delta = batch_mean - mean
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
        if mean is None:
            raise ValueError("feature statistics: no positions to fit them on")
        std = np.sqrt(m2 / count)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(mean.tolist()), tuple(std.tolist()), count)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(T, F) -> standardised (T, F) float32."""
        if features.shape[-1] != len(self.mean):
            raise ValueError(
                f"features have {features.shape[-1]} values per position, the statistics "
                f"{len(self.mean)}"
            )
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return ((features - mean) / std).astype(np.float32)

    def save(self, directory: str | Path) -> Path:
        """Write `STATS_FILE` into `directory`, atomically."""
        return write_json(Path(directory) / STATS_FILE, asdict(self))

    @classmethod
    def load(cls, directory: str | Path) -> FeatureStats:
        """Read `STATS_FILE` from `directory`; anything wrong is one ValueError naming it."""
        path = Path(directory) / STATS_FILE
        try:
            values = json.loads(path.read_text())
            stats = cls(tuple(map(float, values["mean"])), tuple(map(float, values["std"])),
                        int(values["positions"]))  # fmt: skip
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no feature statistics") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not feature statistics ({type(error).__name__})") from None
        finite = all(math.isfinite(v) for v in stats.mean + stats.std)
        if not finite or len(stats.mean) != len(stats.std) or min(stats.std, default=0) <= 0:
            raise ValueError(f"{path}: not feature statistics (bad values)")
        return stats
