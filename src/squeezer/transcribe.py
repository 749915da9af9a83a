"""Transcribe audio files: long files in overlapping windows, stitched at the frame level.

A file longer than one window is cut into windows of `window_s` seconds that overlap by
`overlap_s`; each window's log-probabilities keep only the frames away from its edges (where the
encoder saw little context), the kept frames tile the whole file exactly once, and the stitched
sequence is decoded as one utterance, so no word is cut or repeated at a window boundary.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from squeezer.audio import SAMPLE_RATE, load_audio
from squeezer.decoding import greedy_decode

if TYPE_CHECKING:
    from squeezer.model import AsrModel
    from squeezer.onnx_model import OnnxCtcModel

__all__ = ["Transcription", "stitched_log_probs", "transcribe_files"]


@dataclass(frozen=True)
class Transcription:
    """The text of one file, its duration, the wall time spent and the real-time factor."""

    path: str
    text: str
    audio_seconds: float
    seconds: float

    @property
    def real_time_factor(self) -> float:
        return self.seconds / max(self.audio_seconds, 1e-9)

    def to_dict(self) -> dict:
        return {**asdict(self), "real_time_factor": self.real_time_factor}


def _frame_samples(model: AsrModel | OnnxCtcModel) -> int:
    """Audio samples per encoder output frame (hop x subsampling, x2 under a bare reduction)."""
    probe = torch.tensor([SAMPLE_RATE * 60])
    return round(int(probe[0]) / int(model.frames_for_samples(probe)[0]))


@torch.no_grad()
def stitched_log_probs(
    model: AsrModel | OnnxCtcModel,
    waveform: torch.Tensor,
    window_s: float = 20.0,
    overlap_s: float = 2.0,
) -> torch.Tensor:
    """waveform (N,) -> log-probs (T', V + 1) of the whole file, computed window by window."""
    frame = _frame_samples(model)
    window_frames = int(window_s * SAMPLE_RATE) // frame
    margin = int(overlap_s * SAMPLE_RATE) // frame // 2
    if window_frames <= 2 * margin:
        raise ValueError(f"window_s={window_s} must exceed overlap_s={overlap_s}")
    window, hop = window_frames * frame, (window_frames - 2 * margin) * frame
    device = model.device
    if waveform.numel() <= window:
        lengths = torch.tensor([waveform.numel()], device=device)
        out = model.log_probs(waveform.to(device).unsqueeze(0), lengths)
        return out.log_probs[0, : int(out.lengths[0])]
    starts = list(range(0, waveform.numel() - window + hop, hop))
    chunks = [waveform[s : s + window] for s in starts]
    lengths = torch.tensor([c.numel() for c in chunks], device=device)
    batch = torch.nn.utils.rnn.pad_sequence(chunks, batch_first=True).to(device)  # (W, window)
    out = model.log_probs(batch, lengths)
    pieces = []
    for index, (log_probs, length) in enumerate(zip(out.log_probs, out.lengths, strict=True)):
        first = 0 if index == 0 else margin
        last = int(length) if index == len(chunks) - 1 else window_frames - margin
        pieces.append(log_probs[first:last])
    return torch.cat(pieces)  # (T', V + 1)


def transcribe_files(
    model: AsrModel | OnnxCtcModel,
    paths: list[str | Path],
    window_s: float = 20.0,
    overlap_s: float = 2.0,
    max_seconds: float | None = None,
) -> list[Transcription]:
    """Greedy transcription of each file with the model's tokenizer."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; load it with squeezer.load_model(dir)")
    results = []
    for path in paths:
        start = time.perf_counter()
        waveform = torch.from_numpy(load_audio(path, max_seconds=max_seconds))
        log_probs = stitched_log_probs(model, waveform, window_s, overlap_s)
        lengths = torch.tensor([log_probs.size(0)])
        ids = greedy_decode(log_probs.unsqueeze(0), lengths)[0]
        text = model.tokenizer.decode(ids)
        elapsed = time.perf_counter() - start
        results.append(Transcription(str(path), text, waveform.numel() / SAMPLE_RATE, elapsed))
    return results
