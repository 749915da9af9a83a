"""A landmark-to-text task with a known answer: pen trajectories drawn per character, chained
into words, with a style per writer. The CTC check of the sequence tasks (ASL fingerspelling's
shape: coordinates per frame in, text out), without a dataset to download.

Each of the 26 letters has a fixed shape: a few control points (drawn once, from
`SHAPE_SEED`) that the pen passes through. A writer has a style, drawn from the writer's id:
slant, width and height, speed (points per letter), a small distortion of every letter's shape
of its own, and a hand tremor. A word is its letters side by side, the pen lifted between words.
Each position holds (x, y, dx, dy, pen down). Writers are disjoint between the splits (train
writers 0..., dev and test writers from their own ranges), so a model must read shapes, not
memorise hands.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ALPHABET", "FEATURES", "Writer", "draw_text", "write_split"]

ALPHABET = string.ascii_lowercase
FEATURES = 5  # x, y, dx, dy, pen down
SHAPE_SEED = 2024
CONTROL_POINTS = 5


def _shapes() -> np.ndarray:
    """(26, CONTROL_POINTS, 2): each letter's control points in a unit box."""
    rng = np.random.default_rng(SHAPE_SEED)
    return rng.uniform(0.0, 1.0, size=(len(ALPHABET), CONTROL_POINTS, 2))


@dataclass(frozen=True)
class Writer:
    """A hand: its style, drawn from its id."""

    id: int
    slant: float
    width: float
    height: float
    points_per_letter: tuple[int, int]
    distortion: np.ndarray  # (26, CONTROL_POINTS, 2), added to the shapes
    tremor: float

    @classmethod
    def from_id(cls, writer_id: int) -> Writer:
        rng = np.random.default_rng([SHAPE_SEED, writer_id])
        fastest = int(rng.integers(6, 10))
        return cls(
            id=writer_id,
            slant=float(rng.uniform(-0.35, 0.35)),
            width=float(rng.uniform(0.7, 1.3)),
            height=float(rng.uniform(0.7, 1.3)),
            points_per_letter=(fastest, fastest + int(rng.integers(2, 6))),
            distortion=rng.normal(0.0, 0.06, size=(len(ALPHABET), CONTROL_POINTS, 2)),
            tremor=float(rng.uniform(0.005, 0.03)),
        )


def _letter(shape: np.ndarray, points: int) -> np.ndarray:
    """(points, 2) along the polyline through the control points, evenly in arc length."""
    steps = np.linalg.norm(np.diff(shape, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    where = np.linspace(0.0, arc[-1], points)
    return np.stack([np.interp(where, arc, shape[:, k]) for k in range(2)], axis=1)


def draw_text(text: str, writer: Writer, rng: np.random.Generator) -> np.ndarray:
    """The (T, 5) trajectory of `text` (letters and single spaces) in `writer`'s hand."""
    shapes = _shapes() + writer.distortion
    pieces, x0 = [], 0.0
    for character in text:
        if character == " ":
            x0 += 0.8 * writer.width
            continue
        index = ALPHABET.index(character)
        points = int(rng.integers(*writer.points_per_letter, endpoint=True))
        xy = _letter(shapes[index], points) * [writer.width, writer.height]
        xy[:, 0] += xy[:, 1] * writer.slant + x0  # slant: shear by height
        pen = np.ones((points, 1))
        pen[0] = 0.0  # the pen comes down at each letter's first point
        pieces.append(np.concatenate([xy, pen], axis=1))
        x0 += 1.1 * writer.width
    path = np.concatenate(pieces)  # (T, 3)
    path[:, :2] += rng.normal(0.0, writer.tremor, size=(len(path), 2))
    deltas = np.diff(path[:, :2], axis=0, prepend=path[:1, :2])
    return np.concatenate([path[:, :2], deltas, path[:, 2:]], axis=1).astype(np.float32)


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(ALPHABET), size=int(rng.integers(2, 7))))


def write_split(out_dir: str | Path, split: str, count: int, writers: range, seed: int) -> Path:
    """`count` sequences of one to three words by `writers`, as `out_dir/<split>/*.npy` and
    the manifest `out_dir/<split>.jsonl` (`"text"`, and the writer in the id)."""
    out_dir = Path(out_dir)
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, len(split)])
    hands = [Writer.from_id(w) for w in writers]
    lines = []
    for index in range(count):
        writer = hands[index % len(hands)]
        text = " ".join(_word(rng) for _ in range(int(rng.integers(1, 4))))
        name = f"{split}/{index:05d}.npy"
        np.save(out_dir / name, draw_text(text, writer, rng))
        lines.append({"id": f"{split}{index}-w{writer.id}", "features": name, "text": text})
    manifest = out_dir / f"{split}.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest
