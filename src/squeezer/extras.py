"""Which optional extra brings which third-party module, and the one-line error naming it.

`pip install squeezer` brings the encoder, its heads and losses with torch and PyYAML alone.
The speech stack, plots, export and n-gram language models are extras; code that reaches a
module of one without it installed fails with a message that names the extra to install.
"""

from __future__ import annotations

__all__ = ["EXTRA_OF_MODULE", "extra_for", "missing_extra_message"]

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF_MODULE: dict[str, str] = {
    "numpy": "speech",
    "lhotse": "speech",
    "soundfile": "speech",
    "soxr": "speech",
    "sentencepiece": "speech",
    "tqdm": "speech",
    "safetensors": "speech",
    "jiwer": "speech",
    "pyctcdecode": "speech",
    "pyarrow": "sequences",
    "matplotlib": "plots",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
    "sherpa_onnx": "dev",
    "kenlm": "lm",
    "tensorboard": "tensorboard",
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name is read by its top level), or None."""
    if not module:
        return None
    return EXTRA_OF_MODULE.get(module.split(".", 1)[0])


def missing_extra_message(error: ModuleNotFoundError) -> str | None:
    """One line naming the extra that brings the missing module; None when none does."""
    extra = extra_for(error.name)
    if extra is None:
        return None
    return (
        f"this needs the '{extra}' extra (module '{error.name}' is not installed): "
        f"pip install 'squeezer[{extra}]'"
    )
