"""Speech CTC training: the shared loop (`squeezer.training.loop`) with audio manifests,
log-mel features, a tokenizer and the speech model.

    squeezer train RECIPE.yaml --out runs/xs [--set optim.peak_lr=1e-3 ...] [--resume]
    squeezer train RECIPE.yaml --out runs/ft --init MODEL_DIR_OR.nemo   (fine-tuning)

Layout of the run directory: `config.yaml` (the resolved recipe; a fine-tuning run's records
its init and the init model's encoder and features), `tokenizer/`,
`checkpoints/checkpoint-<step>.pt` (each also records the model's settings and the fine-tuning
settings, so --resume rebuilds the same model), `metrics.jsonl`, and at the end `model/` (a
model directory: averaged or EMA weights, config and tokenizer). Fine-tuning:
`squeezer.training.finetune`; the data and its skip counts: `squeezer.training.data`; one
step's loss, precision and what a skipped step puts back: `squeezer.training.step`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from squeezer.data.dataset import AsrBatch
from squeezer.data.manifests import load_cuts, read_manifest
from squeezer.features import SpecAugment
from squeezer.model import AsrModel, model_settings, save_model
from squeezer.text import Tokenizer
from squeezer.training import step as step_parts  # through the module: tests inject faults
from squeezer.training.checkpoints import Checkpoint
from squeezer.training.data import prepare_tokenizer, training_loader
from squeezer.training.finetune import (
    check_agreement,
    check_no_finetuning,
    model_from_settings,
    resumed_config,
    resumed_tokenizer,
    start_from_init,
    with_architecture,
)
from squeezer.training.loop import TrainingLoop
from squeezer.training.recipe import TrainConfig

__all__ = ["Trainer", "train"]


class Trainer(TrainingLoop):
    """Speech CTC: a lhotse manifest of audio, log-mel features with SpecAugment, a tokenizer
    built on the training text (or the init model's), an `AsrModel`, greedy WER/CER on dev."""

    unreadable = "audio"

    def _read_training_data(self, config: TrainConfig) -> tuple[Any, Counter]:
        """The training split, and the count of manifest lines that are not usable, by reason."""
        return read_manifest(config.data.train)

    def _read_dev_data(self) -> Any:
        return load_cuts(self.config.data.dev) if self.config.data.dev else None

    def _training_loader(self, cuts: Any, manifest_skips: Counter) -> tuple[Any, Any]:
        """The loader (its sampler has `set_epoch` and `skip`) and the report of dropped data."""
        return training_loader(
            self.config, self.model, self.tokenizer, cuts, manifest_skips, self.dist
        )

    def _augmenter(self) -> SpecAugment | None:
        spec_augment = self.config.spec_augment
        return SpecAugment(spec_augment) if spec_augment else None

    def _count_skipped(self, batch: AsrBatch) -> None:
        """Count the batch's unreadable cuts per reason (this rank's; summed at the end)."""
        for _, _, reason, _ in batch.skipped:
            self.state.skipped[reason] = self.state.skipped.get(reason, 0) + 1

    def _loss(self, batch: AsrBatch) -> torch.Tensor:
        """The batch's loss, a float32 scalar."""
        return step_parts.ctc_loss(self.ddp, batch, self.augment)

    def _settings(self) -> dict[str, Any]:
        """What a checkpoint records so that --resume rebuilds the same model."""
        return model_settings(self.model)

    def _build(
        self, config: TrainConfig, cuts, checkpoint: Checkpoint | None
    ) -> tuple[TrainConfig, AsrModel, Tokenizer]:
        """The run's recipe, model and tokenizer: from its checkpoint (resume), from the init
        model (fine-tuning), or new (from scratch)."""
        if checkpoint is not None:
            source = str(checkpoint.path)
            config = resumed_config(config, checkpoint.state.get("finetune"), source)
            if "settings" in checkpoint.state:  # older checkpoints: the recipe's model
                model = model_from_settings(checkpoint.state["settings"])
                check_agreement(config, model.config, model.frontend.config, source)
                tokenizer = resumed_tokenizer(self.out_dir / "tokenizer", model, source)
                if config.finetune.init is not None:
                    config = with_architecture(config, model)
                return config, model, tokenizer
        elif config.finetune.init is not None:
            start = start_from_init(config, cuts, self.out_dir / "tokenizer", self.dist.is_main)
            return start.config, start.model, start.tokenizer
        check_no_finetuning(config.finetune)
        tokenizer = prepare_tokenizer(config, self.out_dir, self.dist, cuts)
        model = AsrModel(config.encoder_config(), tokenizer.vocab_size, config.features)
        return config, model, tokenizer

    def _evaluate_dev(self, trained_s: float) -> None:
        """Greedy WER/CER on the dev manifest (rank 0), logged beside the training loss."""
        if self.dev_data is None:
            return
        from squeezer.evaluate import evaluate

        self.model.eval()
        self.model.tokenizer = self.tokenizer
        # Scoring must not move the training's random generators: a run resumed from this
        # checkpoint did not score it, and must draw the same dropout masks as this one.
        with torch.random.fork_rng(devices=[]):
            try:
                rates = evaluate(self.model, self.dev_data, max_batch_seconds=120).rates["greedy"]
            finally:
                self._train_mode()
        self.metrics.write({"step": self.state.step, "dev_wer": rates.wer, "dev_cer": rates.cer,
                            "time_s": round(trained_s, 1)})  # fmt: skip

    def _save_final(self, weights: dict[str, torch.Tensor], directory: Path) -> None:
        """Write the model directory of the final weights (rank 0)."""
        final = AsrModel(self.model.config, self.model.vocab_size, self.model.frontend.config)
        final.load_state_dict(weights)
        save_model(final, directory, self.tokenizer)


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False) -> Path:
    """Run a recipe into `out_dir`; with `resume`, continue from its latest checkpoint.

    With `config.finetune.init` set (`squeezer train --init`), a run that starts (no checkpoint
    to resume) starts from that model: see `squeezer.training.recipe.FinetuneConfig`.
    """
    return Trainer(config, Path(out_dir), resume).fit()
