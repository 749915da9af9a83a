"""The model family: pure torch modules, no I/O."""

from squeezer.nn.encoder import EncoderOutput, SequenceEncoder
from squeezer.nn.heads import CtcHead, CtcOutput, FrameRegressor, PooledClassifier

__all__ = [
    "CtcHead",
    "CtcOutput",
    "EncoderOutput",
    "FrameRegressor",
    "PooledClassifier",
    "SequenceEncoder",
]
