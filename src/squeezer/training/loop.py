"""The training loop every task shares: plain PyTorch, one process or many (torchrun + DDP).

`TrainingLoop` holds one run: checkpoints and exact resume (`squeezer.training.checkpoints`),
preemption (`squeezer.training.preemption`), the non-finite step skip and bf16
(`squeezer.training.step`), EMA or checkpoint averaging, DDP, the metrics log. What a task
must say itself (its data, model, loader, loss, dev scoring and model directory) are abstract
methods: speech CTC is `squeezer.training.speech.Trainer`, the other sequence tasks are
`squeezer.sequences.training.SequenceTrainer`. This module imports torch, tqdm and the
recipe alone, so a sequence task trains without the speech stack installed.

Layout of a run directory: `config.yaml` (the resolved recipe), `checkpoints/checkpoint-<step>.pt`
(each also records the model's settings, so --resume rebuilds the same model),
`metrics.jsonl`, the task's vocabulary, and at the end `model/` (a model directory: averaged or
EMA weights and what the task needs beside them).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from squeezer.structured import to_mapping
from squeezer.training.checkpoints import (
    Checkpoint,
    TrainState,
    average_model_states,
    checkpoint_paths,
    load_checkpoint,
    newest_readable_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from squeezer.training.distributed import (
    all_agree,
    barrier,
    init_distributed,
    seed_everything,
    summed_over_ranks,
)
from squeezer.training.freeze import Freezer
from squeezer.training.metrics import MetricsLog
from squeezer.training.preemption import Preempted, PreemptionFlag
from squeezer.training.recipe import TrainConfig
from squeezer.training.schedule import build_schedule
from squeezer.training.step import BufferSnapshot, autocast

__all__ = ["TrainingLoop"]

log = logging.getLogger("squeezer.training")


def _check_weights_fit(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """ValueError unless the checkpoint's weights load into `model` (a checkpoint without
    recorded settings, from another recipe, holds weights of other shapes or names)."""
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"{path}: its weights do not fit the recipe's model ({reason})") from None


class TrainingLoop(ABC):
    """Holds the pieces of one run; `fit()` runs it to the end.

    A subclass provides the task's own parts (the abstract methods below) and nothing else.
    `self.tokenizer` is what the task's model directory needs beside the weights.
    """

    unreadable = "data"  # what a batch reads, for the message when none of an epoch could be

    def __init__(self, config: TrainConfig, out_dir: Path, resume: bool) -> None:
        self.out_dir = out_dir
        self.dist = init_distributed(config.run.device)
        seed_everything(config.run.seed + self.dist.rank)
        if self.dist.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        data, manifest_skips = self._read_training_data(config)
        checkpoint, built = None, {}
        if resume:

            def fits(path: Path, state: dict[str, Any]) -> None:
                built[path] = self._build(config, data, Checkpoint(path, state))
                _check_weights_fit(built[path][1], state, path)

            checkpoint = self._latest_checkpoint(fits)
        if checkpoint is not None:
            self.config, self.model, self.tokenizer = built[checkpoint.path]
        else:
            self.config, self.model, self.tokenizer = self._build(config, data, None)
        if self.dist.is_main:
            self.config.to_yaml(out_dir / "config.yaml")
        self.model.to(self.dist.device)
        self.loader, self.data_report = self._training_loader(data, manifest_skips)
        self.augment = self._augmenter()
        self._build_optimizer()
        self.state = TrainState()
        self.metrics = MetricsLog(out_dir, config.run.tensorboard) if self.dist.is_main else None
        self.dev_data = self._read_dev_data()
        self.ema = None
        if config.run.ema_decay:
            multi_avg = torch.optim.swa_utils.get_ema_multi_avg_fn(config.run.ema_decay)
            self.ema = torch.optim.swa_utils.AveragedModel(self.model, multi_avg_fn=multi_avg)
        self._saved_step = -1
        if checkpoint is not None:
            self._restore(checkpoint)
            self._saved_step = self.state.step
        self.freezer = Freezer(self.model, self.config.finetune)
        self._train_mode()
        self.ddp = self._wrap()
        self.preemption = PreemptionFlag()

    # -- what a task (speech here; `squeezer.sequences.training` for the others) provides --

    # -- what a task provides (`squeezer.training.speech.Trainer` for speech,
    # `squeezer.sequences.training.SequenceTrainer` for the other sequence tasks) ------

    @abstractmethod
    def _read_training_data(self, config: TrainConfig) -> tuple[Any, Counter]:
        """The training split, and the count of manifest lines that are not usable, by reason."""

    @abstractmethod
    def _read_dev_data(self) -> Any:
        """The dev split for `_evaluate_dev`, or None."""

    @abstractmethod
    def _training_loader(self, data: Any, manifest_skips: Counter) -> tuple[Any, Any]:
        """The loader (its sampler has `set_epoch` and `skip`; its batches `to`, `len` and
        `skipped`) and the report of dropped data (its `dropped` counts per reason)."""

    @abstractmethod
    def _count_skipped(self, batch: Any) -> None:
        """Add the batch's unreadable items to `self.state.skipped`, per reason (this rank's;
        summed over ranks at the end)."""

    @abstractmethod
    def _augmenter(self) -> Any:
        """What `_loss` augments a batch with, or None."""

    @abstractmethod
    def _loss(self, batch: Any) -> torch.Tensor:
        """The batch's loss, a float32 scalar."""

    @abstractmethod
    def _settings(self) -> dict[str, Any]:
        """What a checkpoint records so that --resume rebuilds the same model."""

    @abstractmethod
    def _build(
        self, config: TrainConfig, data: Any, checkpoint: Checkpoint | None
    ) -> tuple[TrainConfig, torch.nn.Module, Any]:
        """The run's recipe, model and vocabulary (what the model directory needs beside the
        weights): from `checkpoint` (resume), or new."""

    @abstractmethod
    def _evaluate_dev(self, trained_s: float) -> None:
        """Score the dev split (rank 0) into metrics.jsonl, leaving the random generators and
        training mode as they were."""

    @abstractmethod
    def _save_final(self, weights: dict[str, torch.Tensor], directory: Path) -> None:
        """Write the model directory of the final weights (rank 0)."""

    def _device_ids(self) -> list[int] | None:
        return [self.dist.local_rank] if self.dist.device.type == "cuda" else None

    def _wrap(self) -> torch.nn.Module:
        """The model as the loop calls it: DDP under torchrun. DDP reduces the gradients of the
        parameters that require one when it is built, so it is built again when frozen
        parameters are released."""
        if self.dist.world_size == 1:
            return self.model
        return DistributedDataParallel(self.model, device_ids=self._device_ids())

    def _train_mode(self) -> None:
        """Training mode, except for what `finetune.freeze` still holds in eval mode."""
        self.model.train()
        self.freezer.apply(self.state.step)

    def _param_groups(self) -> list[dict[str, Any]]:
        """AdamW's parameter groups: one at optim.peak_lr (a task may give a part its own
        rate; the schedule scales every group's initial rate alike)."""
        return [{"params": list(self.model.parameters())}]

    def _build_optimizer(self) -> None:
        optim = self.config.optim
        self.optimizer = torch.optim.AdamW(
            self._param_groups(),
            lr=optim.peak_lr,
            betas=optim.betas,
            weight_decay=optim.weight_decay,
        )
        self.scheduler = build_schedule(optim, self.config.run.max_steps).scheduler(self.optimizer)

    # -- checkpoints -------------------------------------------------------------------

    def _checkpoint_state(self) -> dict[str, Any]:
        finetune = self.config.finetune
        state = {
            "settings": self._settings(),  # --resume rebuilds this model from them
            "finetune": to_mapping(finetune) if finetune.init is not None else None,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_state": asdict(self.state),
            "rng": rng_state(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def _checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoints" / f"checkpoint-{self.state.step:09d}.pt"

    def _save(self) -> None:
        """Checkpoint the current step (once), then score the dev set."""
        if self._saved_step == self.state.step:
            return
        start = time.perf_counter()
        if self.dist.is_main:
            state = self._checkpoint_state()
            save_checkpoint(state, self.out_dir / "checkpoints", self.state.step, self._keep())
            self._evaluate_dev(trained_s=self._elapsed())
        self._saved_step = self.state.step
        barrier()
        # The wall-clock budget (run.max_minutes) is training time: checkpointing and dev
        # scoring are not charged to it (on every rank alike), so two models compared under
        # one budget get the same time to learn however often they are scored.
        self._started += time.perf_counter() - start

    def _check_ranks_in_sync(self) -> None:
        """Every rank must hold the same weights after DDP training, having skipped the same
        steps: log the largest weight gap and each rank's count of skipped steps."""
        if self.dist.world_size == 1:
            return
        flat = torch.cat([p.detach().float().flatten() for p in self.model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(self.dist.world_size)]
        torch.distributed.all_gather(gathered, flat)
        gap = max(float((g - gathered[0]).abs().max()) for g in gathered)
        bad = torch.tensor([self.state.bad_steps], device=self.dist.device)
        counts = [torch.empty_like(bad) for _ in range(self.dist.world_size)]
        torch.distributed.all_gather(counts, bad)
        if self.dist.is_main:
            self.metrics.write({"step": self.state.step, "ranks": self.dist.world_size,
                                "rank_weight_max_abs_diff": gap,
                                "rank_bad_steps": [int(c) for c in counts]})  # fmt: skip

    def _keep(self) -> int:
        return max(self.config.run.keep_last, self.config.run.average_last)

    def _latest_checkpoint(self, fits) -> Checkpoint | None:
        """The newest checkpoint that reads back and `fits` the recipe (older ones are skipped
        with a warning: a truncated file, or a valid one another recipe wrote)."""
        directory = self.out_dir / "checkpoints"
        found = newest_readable_checkpoint(directory, self.dist.device, accept=fits)
        if found is None:
            log.info("no checkpoint in %s: starting the run", self.out_dir)
            return None
        return Checkpoint(*found)

    def _restore(self, checkpoint: Checkpoint) -> None:
        """The optimiser, schedule, counters, random generators and EMA of `checkpoint`; its
        weights are in the model already, loaded when they were checked to fit the recipe."""
        path, state = checkpoint.path, checkpoint.state
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.state = TrainState(**state["train_state"])
        restore_rng(state["rng"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        if self.dist.is_main:
            log.info("resumed from %s at step %d", path.name, self.state.step)

    # -- the loop ----------------------------------------------------------------------

    def _should_stop(self) -> bool:
        """At a step boundary: the budget is spent or a rank was asked to stop (preemption).
        Every rank takes the same decision at the same step."""
        run = self.config.run
        if run.max_steps is not None and self.state.step >= run.max_steps:
            return True
        over_time = run.max_minutes is not None and self._elapsed() >= 60 * run.max_minutes
        go_on = not over_time and self.preemption.requested is None
        if all_agree(go_on, self.dist.device):
            return False
        if self.preemption.requested is None and not over_time:
            self.preemption.requested = "a signal to another rank"
        return True

    def _elapsed(self) -> float:
        return self.state.elapsed_s + time.perf_counter() - self._started

    def _batches(self, epoch: int):
        """The epoch's batches, skipping those a resumed run already consumed."""
        sampler = self.loader.sampler
        sampler.set_epoch(epoch)
        skip = self.state.batches_in_epoch if epoch == self.state.epoch else 0
        if skip:
            sampler.skip(skip)  # cut lists only, no audio is read
        return iter(self.loader)

    def _forward_backward(self, batch: Any, last_micro: bool) -> float | None:
        """One micro-batch; returns its loss, or None when it is non-finite on any rank."""
        batch = batch.to(self.dist.device)
        sync = nullcontext() if last_micro or self.ddp is self.model else self.ddp.no_sync()
        with sync:
            with autocast(self.config, self.dist.device):
                loss = self._loss(batch)
            if not all_agree(bool(torch.isfinite(loss)), self.dist.device):
                return None
            (loss / self.config.optim.accumulate).backward()
        return float(loss.detach())

    def _optimizer_step(self) -> float | None:
        """Clip, step, schedule; None (and no update) when the gradient is non-finite."""
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return float(norm)

    def _record_bad_step(self, reason: str) -> None:
        """Drop the step: its gradients, and what its forward pass did to the running
        statistics (`BufferSnapshot`). Weights, optimiser, schedule and EMA stay as they were.
        Count it in metrics.jsonl, and stop after `run.max_bad_steps` in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self._buffers.restore()
        self.state.bad_steps += 1
        self.state.bad_in_a_row += 1
        if self.dist.is_main:
            self.metrics.write({"step": self.state.step, "skipped_step": reason,
                                "bad_steps": self.state.bad_steps,
                                "batches_in_epoch": self.state.batches_in_epoch})  # fmt: skip
        limit = self.config.run.max_bad_steps
        if self.state.bad_in_a_row >= limit:
            raise RuntimeError(
                f"{limit} non-finite losses or gradients in a row at step {self.state.step}: "
                "stopping (lower optim.peak_lr or check the data)"
            )

    def _epoch(self, epoch: int, progress: tqdm | None) -> bool:
        """Train one epoch; True if the run should stop."""
        accumulate, losses, micro, step_utts = self.config.optim.accumulate, [], 0, 0
        window_start, window_utts = time.perf_counter(), 0  # for the logged utt/s
        batches = self._batches(epoch)
        while True:
            batch = next(batches, None)
            # Ranks may draw different batch counts; all end the epoch when one runs out, so
            # every collective below is entered by all of them.
            if not all_agree(batch is not None, self.dist.device):
                break
            self.state.batches_in_epoch += 1
            self._drawn_batches += 1
            self._count_skipped(batch)
            if not all_agree(len(batch) > 0, self.dist.device):
                continue  # every cut of a rank's batch was unreadable: all ranks pass it by
            self._readable_batches += 1
            if micro == 0:
                self._buffers = BufferSnapshot(self.model)
            micro += 1
            loss = self._forward_backward(batch, last_micro=micro == accumulate)
            if loss is None:
                self._record_bad_step("non-finite loss")
                micro, losses, step_utts = 0, [], 0
                continue
            losses.append(loss)
            step_utts += len(batch)
            if micro < accumulate:
                continue
            micro = 0
            norm = self._optimizer_step()
            if norm is None:
                self._record_bad_step("non-finite gradient")
                losses, step_utts = [], 0
                continue
            self.state.bad_in_a_row = 0
            self.state.step += 1
            if self.freezer.releases_after(self.state.step):
                self._release()
            self.state.utterances += step_utts
            window_utts, step_utts = window_utts + step_utts, 0
            if self.state.step % self.config.run.log_every == 0 or self.state.step == 1:
                rate = window_utts / max(time.perf_counter() - window_start, 1e-9)
                self._log(sum(losses) / len(losses), norm, rate, progress)
                window_start, window_utts = time.perf_counter(), 0
            losses = []
            if progress is not None:
                progress.update(1)
            if self.state.step % self.config.run.checkpoint_every == 0:
                self._save()
            if self._should_stop():
                return True
        return False

    def _release(self) -> None:
        """Let the frozen part train from the next step on (every rank at the same step)."""
        self._train_mode()
        self.ddp = self._wrap()
        if self.dist.is_main:
            log.info("step %d: finetune.freeze=%s released", self.state.step,
                     self.config.finetune.freeze)  # fmt: skip

    def _log(self, loss: float, norm: float, rate: float, progress: tqdm | None) -> None:
        if not self.dist.is_main:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        record = {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "loss": round(loss, 5),
            "lr": lr,
            "grad_norm": round(norm, 4),
            "utt_per_s": round(rate, 2),
            "bad_steps": self.state.bad_steps,
            "time_s": round(self._elapsed(), 1),
        }
        if self.state.skipped:
            record["skipped_cuts"] = dict(self.state.skipped)
        self.metrics.write(record)
        if progress is not None:
            progress.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", utt_s=f"{rate:.1f}")

    def fit(self) -> Path:
        """Train to the end of the budget; return the final model directory.

        Raises `Preempted` after checkpointing when SIGTERM or SIGUSR1 arrived.
        """
        self.preemption.install()
        try:
            return self._fit()
        finally:
            self.preemption.restore()
            self._stop_loader_workers()

    def _stop_loader_workers(self) -> None:
        """Shut the loader's persistent workers down now. They ignore SIGTERM (it is the main
        process's to handle), so left to multiprocessing's exit handler, which terminates
        them with SIGTERM and then waits, they would keep a failed run from ever exiting."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

    def _fit(self) -> Path:
        self._started = time.perf_counter()
        progress = None
        if self.dist.is_main:
            total, step = self.config.run.max_steps, self.state.step
            progress = tqdm(total=total, initial=step, desc="train", unit="step")
        try:
            self._epochs(progress)
        finally:  # an error's one line must come after the bar's last one, not before
            if progress is not None:
                progress.close()
        if self.preemption.requested is not None:
            log.info("rank %d stops at step %d (%s)", self.dist.rank, self.state.step,
                     self.preemption.requested)  # fmt: skip
            self._save()
            raise Preempted(self.preemption.requested, self.state.step,
                            str(self._checkpoint_path()))  # fmt: skip
        self._check_ranks_in_sync()
        self._summarize()
        return self._finish()

    def _epochs(self, progress: tqdm | None) -> None:
        """Epoch after epoch until the budget is spent or a stop is requested."""
        stop = self._should_stop()
        while not stop and self.state.epoch < self.config.run.epochs:
            steps_before, self._readable_batches, self._drawn_batches = self.state.step, 0, 0
            stop = self._epoch(self.state.epoch, progress)
            if self.state.step == steps_before and self.state.batches_in_epoch == 0:
                raise ValueError(
                    f"{self.config.data.train}: an epoch produced no batch; the manifest is too "
                    "small for data.max_batch_seconds on this many processes"
                )
            if self._drawn_batches and not self._readable_batches:
                raise ValueError(
                    f"{self.config.data.train}: no {self.unreadable} of a whole epoch could be "
                    f"read (skipped: {self.state.skipped or 'none'}); check the manifest's paths"
                )
            if not stop:
                self.state.epoch += 1
                self.state.batches_in_epoch = 0
            self.state.elapsed_s = self._elapsed()
            self._started = time.perf_counter()
            self._save()

    def _summarize(self) -> None:
        """The run's data summary: cuts dropped before training and skipped while reading,
        per reason, summed over ranks (rank 0 writes it to metrics.jsonl and the log)."""
        skipped = summed_over_ranks(self.state.skipped, self.dist)
        if self.dist.is_main:
            record = {"step": self.state.step, "summary": "data",
                      "filtered_cuts": dict(self.data_report.dropped),
                      "skipped_cuts": skipped, "bad_steps": self.state.bad_steps}  # fmt: skip
            self.metrics.write(record)
            log.info("data: dropped before training %s; unreadable while training %s; "
                     "non-finite steps skipped %d", record["filtered_cuts"] or "none",
                     skipped or "none", self.state.bad_steps)  # fmt: skip

    def _final_weights(self) -> dict[str, torch.Tensor]:
        if self.ema is not None:
            return {k[len("module.") :]: v for k, v in self.ema.state_dict().items()
                    if k.startswith("module.")}  # fmt: skip
        paths = checkpoint_paths(self.out_dir / "checkpoints")[-self.config.run.average_last :]
        return average_model_states([load_checkpoint(p)["model"] for p in paths])

    def _finish(self) -> Path:
        directory = self.out_dir / "model"
        if self.dist.is_main:
            self._save_final(self._final_weights(), directory)
            log.info("model written to %s (step %d)", directory, self.state.step)
        barrier()
        return directory
