"""`load_model`: any model squeezer can run, by path: a model directory or a NeMo `.nemo` file.

The loaders it dispatches to (`squeezer.model.load_model_directory`, `squeezer.nemo.load_nemo`)
each know one format; this module is the only one that knows both, so the model itself imports
neither the importer nor the transcription loop.
"""

from __future__ import annotations

from pathlib import Path

import torch

from squeezer.model import AsrModel, load_model_directory

__all__ = ["load_model"]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> AsrModel:
    """Read a model directory written by `save_model` (or `squeezer train`), or a NeMo `.nemo`
    CTC checkpoint (any file: see `squeezer.nemo`); eval mode, tokenizer attached."""
    path = Path(path)
    if path.is_file():
        from squeezer.nemo import load_nemo  # lazily: only .nemo files need the importer

        return load_nemo(path, device)
    return load_model_directory(path, device)
