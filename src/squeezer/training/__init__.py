"""CTC training: `squeezer train RECIPE --out RUN [--resume] [--init MODEL]`, one file per concern.

recipe.py       the recipe (YAML, typed, `--set` overrides)
schedule.py     the learning-rate schedules (Noam hold-annealing, cosine)
loop.py         the training loop every task shares (`TrainingLoop`)
speech.py       speech CTC on it (`Trainer`, `train`)
freeze.py       `finetune.freeze`: part of a model held still
checkpoints.py  atomic checkpoints, what they hold and how a run resumes from them
finetune.py     starting from a trained model (`--init`), freezing, vocabulary changes
distributed.py  one process or many (torchrun), collectives that keep ranks agreeing
metrics.py      metrics.jsonl (and TensorBoard)
"""

from squeezer.training.recipe import TrainConfig, load_recipe

__all__ = ["TrainConfig", "Trainer", "load_recipe", "train"]


def __getattr__(name: str):
    """`Trainer` and `train` on first use: the speech trainer imports the speech data stack,
    which the sequence tasks (built on `squeezer.training.recipe` and `.loop`) do without."""
    if name in ("Trainer", "train"):
        from squeezer.training import speech

        return getattr(speech, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
