"""squeezer: Squeezeformer and Conformer encoders for CTC speech recognition and any sequence."""

from squeezer.config import EncoderConfig, Rung, ablation_ladder, list_presets
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.nn import (
    CtcHead,
    CtcOutput,
    EncoderOutput,
    FrameRegressor,
    PooledClassifier,
    SequenceEncoder,
)

__version__ = "0.1.0"

__all__ = [
    "AsrModel",
    "CtcHead",
    "CtcOutput",
    "EncoderConfig",
    "EncoderOutput",
    "FrameRegressor",
    "PooledClassifier",
    "Rung",
    "SequenceEncoder",
    "__version__",
    "ablation_ladder",
    "list_presets",
    "load_model",
]
