"""The model family and its building blocks: pure torch modules, no I/O.

Importable with torch alone (`pip install squeezer`): nothing here reaches the speech,
decoding or export stack.
"""

from squeezer.nn.attention_bias import AttnBias
from squeezer.nn.drop_path import DropPath
from squeezer.nn.encoder import EncoderOutput, EncoderOutputWithHidden, SequenceEncoder
from squeezer.nn.heads import CtcHead, CtcOutput, FrameRegressor, PooledClassifier
from squeezer.nn.losses import classification_loss, ctc_loss, position_regression_loss
from squeezer.nn.pair_bias import PairBias
from squeezer.nn.pooling import GeMPool, MeanPool, masked_mean
from squeezer.nn.position_head import PositionHead

__all__ = [
    "AttnBias",
    "CtcHead",
    "CtcOutput",
    "DropPath",
    "EncoderOutput",
    "EncoderOutputWithHidden",
    "FrameRegressor",
    "GeMPool",
    "MeanPool",
    "PairBias",
    "PooledClassifier",
    "PositionHead",
    "SequenceEncoder",
    "classification_loss",
    "ctc_loss",
    "masked_mean",
    "position_regression_loss",
]
