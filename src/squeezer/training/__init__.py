"""CTC training: `squeezer train RECIPE --out RUN [--resume] [--init MODEL]`, one file per concern.

recipe.py       the recipe (YAML, typed, `--set` overrides)
schedule.py     the learning-rate schedules (Noam hold-annealing, cosine)
loop.py         the training loop (`Trainer`, `train`)
checkpoints.py  atomic checkpoints, what they hold and how a run resumes from them
finetune.py     starting from a trained model (`--init`), freezing, vocabulary changes
distributed.py  one process or many (torchrun), collectives that keep ranks agreeing
metrics.py      metrics.jsonl (and TensorBoard)
"""

from squeezer.training.recipe import TrainConfig, load_recipe

__all__ = ["TrainConfig", "Trainer", "load_recipe", "train"]


def __getattr__(name: str):
    """`Trainer` and `train` on first use: the loop imports the speech data stack, which the
    sequence tasks' recipes (built on `squeezer.training.recipe`) do without."""
    if name in ("Trainer", "train"):
        from squeezer.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
