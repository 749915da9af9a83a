"""`finetune.freeze`: part of a model held still for the first steps of a fine-tuning run.

Torch alone: the training loop holds a `Freezer` for every task (sequence tasks never freeze).
"""

from __future__ import annotations

from torch import nn

from squeezer.training.recipe import FinetuneConfig

__all__ = ["Freezer"]

# The modules each `finetune.freeze` value holds still (model attribute names).
_FROZEN_PARTS: dict[str, tuple[str, ...]] = {"none": (), "encoder": ("encoder",)}


class Freezer:
    """Holds the `finetune.freeze` part of a model still for the first `freeze_steps` steps.

    Frozen means `requires_grad` off (AdamW skips a parameter without a gradient entirely: no
    update, no moment, no decoupled weight decay, so its weights stay bit-identical) and eval
    mode (no dropout; BatchNorm normalises with its running statistics and leaves them alone),
    as NeMo's `freeze()`. Released, the part trains as the rest.
    """

    def __init__(self, model: nn.Module, settings: FinetuneConfig) -> None:
        self.modules: list[nn.Module] = [getattr(model, n) for n in _FROZEN_PARTS[settings.freeze]]
        self.steps = settings.freeze_steps
        self.norms = [module for module in model.modules()
                      if isinstance(module, nn.modules.batchnorm._BatchNorm)
                      and settings.norm_statistics == "keep"]  # fmt: skip

    def frozen(self, step: int) -> bool:
        """Whether the part is frozen for the optimiser step after `step` steps were taken."""
        return bool(self.modules) and step < self.steps

    def releases_after(self, step: int) -> bool:
        """Whether step number `step` was the last frozen one."""
        return bool(self.modules) and step == self.steps

    def apply(self, step: int) -> None:
        """Freeze or release for the step after `step`; call it after every `model.train()`,
        which would otherwise put the frozen part back into training mode."""
        frozen = self.frozen(step)
        for module in self.modules:
            module.requires_grad_(not frozen)
            if frozen:
                module.eval()
        for norm in self.norms:  # finetune.norm_statistics: keep (the loaded model's, always)
            norm.eval()
