"""Whether the model is being traced for export, where eager-only shortcuts must give way."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

import torch

__all__ = ["exporting", "quiet"]


def exporting() -> bool:
    """True under `torch.onnx.export` and under `torch.export` (which TFLite's converter uses):
    the graph must hold for every shape, so no cut to a batch's longest sequence, no Python
    loop over chunks, the one-node forms of convolution and attention."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence exporters' and converters' progress prints, logs and warnings.

    They report on torch, onnxscript and LiteRT internals (hundreds of lines per export), which
    is not the user's news; errors still raise.
    """
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
