"""squeezer: Squeezeformer and Conformer encoders for CTC speech recognition and any sequence.

`import squeezer` needs torch and PyYAML alone: the encoder family, its heads and losses are
imported here; the speech model (`AsrModel`, `load_model`) is imported on first use and
needs the `speech` extra.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from typing import Any

# Without numpy (the lean install lacks it on purpose) torch warns on import that it cannot
# initialise it; nothing squeezer's core does needs numpy, and what does names its extra.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)

from squeezer.config import EncoderConfig, Rung, ablation_ladder, list_presets  # noqa: E402
from squeezer.extras import missing_extra_message  # noqa: E402
from squeezer.nn import (  # noqa: E402
    CtcHead,
    CtcOutput,
    EncoderOutput,
    FrameRegressor,
    PairBias,
    PooledClassifier,
    SequenceEncoder,
)

try:  # one source: the version pyproject.toml gave the installed package
    __version__ = importlib.metadata.version("squeezer")
except importlib.metadata.PackageNotFoundError:  # a source tree never installed
    __version__ = "0+unknown"

# name -> module, imported on first access (they need the speech extra)
_LAZY = {"AsrModel": "squeezer.model", "load_model": "squeezer.loading"}

__all__ = [
    "AsrModel",
    "CtcHead",
    "CtcOutput",
    "EncoderConfig",
    "EncoderOutput",
    "FrameRegressor",
    "PairBias",
    "PooledClassifier",
    "Rung",
    "SequenceEncoder",
    "__version__",
    "ablation_ladder",
    "list_presets",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'squeezer' has no attribute {name!r}")
    try:
        module = importlib.import_module(_LAZY[name])
    except ModuleNotFoundError as error:
        message = missing_extra_message(error)
        if message is None:
            raise
        raise ModuleNotFoundError(f"squeezer.{name}: {message}", name=error.name) from None
    value = getattr(module, name)
    globals()[name] = value
    return value
