"""Whether the model is being traced for export, where eager-only shortcuts must give way."""

from __future__ import annotations

import torch

__all__ = ["exporting"]


def exporting() -> bool:
    """True under `torch.onnx.export` and under `torch.export` (which TFLite's converter uses):
    the graph must hold for every shape, so no cut to a batch's longest sequence, no Python
    loop over chunks, the one-node forms of convolution and attention."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()
