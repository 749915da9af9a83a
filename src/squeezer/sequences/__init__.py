"""Non-speech sequence tasks: data with known answers for checking the encoder's options."""

from squeezer.sequences.pair_task import PairTaskBatch, pair_task_batch

__all__ = ["PairTaskBatch", "pair_task_batch"]
