"""Score a model on a manifest: greedy (and optionally beam-search) CTC decoding, WER and CER.

    squeezer evaluate MODEL_DIR MANIFEST [--beam 16] [--lm lm.arpa] [--out DIR]

Writes `hypotheses.jsonl` (one row per utterance) and `summary.json` to DIR.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lhotse import CutSet

from squeezer.data.dataset import AsrDataset, make_dataloader
from squeezer.decoding import BeamSearchDecoder, greedy_decode
from squeezer.model import AsrModel
from squeezer.scoring import ErrorRates, error_rates, per_utterance

if TYPE_CHECKING:
    from squeezer.onnx_model import OnnxCtcModel

__all__ = ["Evaluation", "evaluate", "write_evaluation"]


@dataclass
class Evaluation:
    """Scores per decoder ("greedy", "beam"), per-utterance rows, the time it took, and the
    cuts whose audio could not be read (id, path, error), which are not scored."""

    rates: dict[str, ErrorRates]
    rows: list[dict]
    audio_seconds: float
    seconds: float
    unreadable: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "utterances": len(self.rows),
            "audio_hours": round(self.audio_seconds / 3600, 4),
            "seconds": round(self.seconds, 2),
            "real_time_factor": round(self.seconds / max(self.audio_seconds, 1e-9), 4),
            **{name: asdict(rates) for name, rates in self.rates.items()},
            "unreadable": self.unreadable,
        }


@torch.no_grad()
def evaluate(
    model: AsrModel | OnnxCtcModel,
    cuts: CutSet,
    beam_width: int = 0,
    lm_path: str | Path | None = None,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
) -> Evaluation:
    """Decode every cut greedily (and with beam search when beam_width > 0) and score them.

    `model` is a PyTorch `AsrModel` or an exported one in ONNX Runtime (`load_onnx_model`).
    """
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; load it with squeezer.load_model(dir)")
    tokenizer, device = model.tokenizer, model.device
    beam = BeamSearchDecoder(tokenizer, lm_path=lm_path) if beam_width > 0 else None
    # Features are computed on the CPU by the loader: give it its own copy of the frontend
    # instead of moving the model's frontend off (and back onto) the model's device.
    dataset = AsrDataset(copy.deepcopy(model.frontend).cpu(), encode=None)
    loader = make_dataloader(
        cuts, dataset, max_batch_seconds, shuffle=False, num_workers=num_workers
    )
    ids, refs, greedy, beamed, start = [], [], [], [], time.perf_counter()
    unreadable = []
    for batch in loader:
        unreadable += [{"id": cut_id, "path": path, "error": message}
                       for cut_id, path, _, message in batch.skipped]  # fmt: skip
        if len(batch) == 0:
            continue
        out = model(batch.features.to(device), batch.feature_lengths.to(device))
        greedy += [tokenizer.decode(t) for t in greedy_decode(out.log_probs, out.lengths)]
        if beam is not None:
            beamed += beam.decode(out.log_probs.cpu(), out.lengths.cpu(), beam_width=beam_width)
        ids += batch.ids
        refs += batch.texts
    if not ids:
        first = f" (first: {unreadable[0]['path']}: {unreadable[0]['error']})" if unreadable else ""
        raise ValueError(f"none of the {len(cuts)} utterances could be read{first}")
    rates = {"greedy": error_rates(refs, greedy)}
    rows = per_utterance(ids, refs, greedy)
    if beam is not None:
        rates["beam"] = error_rates(refs, beamed)
        for row, text in zip(rows, beamed, strict=True):
            row["beam_hypothesis"] = text
    audio = sum(cuts[i].duration for i in ids)
    return Evaluation(rates, rows, audio, time.perf_counter() - start, unreadable)


def write_evaluation(evaluation: Evaluation, directory: str | Path) -> Path:
    """hypotheses.jsonl and summary.json in `directory`; returns the summary's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "hypotheses.jsonl", "w") as handle:
        for row in evaluation.rows:
            handle.write(json.dumps(row) + "\n")
    path = directory / "summary.json"
    path.write_text(json.dumps(evaluation.summary(), indent=2) + "\n")
    return path
