"""Fine-tuning: a training run that starts from a trained model instead of random weights.

    squeezer train RECIPE.yaml --out RUN --init stt_en_squeezeformer_ctc_xsmall_ls.nemo

NeMo users do this with `init_from_nemo_model` (the weights), `change_vocabulary` (a new
tokenizer and CTC head) and `freeze()` (the encoder, for a while); here the recipe's
`finetune:` section (`squeezer.training.recipe.FinetuneConfig`) says all three. This module
decides where a run's model comes from: the init model when the run starts (`start_from_init`),
the run's own checkpoint on --resume (`resumed_config`, `model_from_settings`);
`squeezer.training.freeze.Freezer` holds part of it still. The speech trainer
(`squeezer.training.speech`) calls these; it never reads `.nemo` files itself.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lhotse import CutSet

from squeezer.config import EncoderConfig
from squeezer.data.dataset import cut_text
from squeezer.features import FeatureConfig
from squeezer.loading import load_model
from squeezer.model import AsrModel
from squeezer.structured import from_mapping
from squeezer.text import Tokenizer, build_tokenizer, load_tokenizer
from squeezer.training.distributed import barrier
from squeezer.training.freeze import Freezer
from squeezer.training.recipe import FinetuneConfig, TrainConfig

__all__ = [
    "Freezer",
    "RunStart",
    "check_agreement",
    "check_no_finetuning",
    "check_vocabulary",
    "initial_model",
    "load_init",
    "model_from_settings",
    "resumed_config",
    "resumed_tokenizer",
    "start_from_init",
    "with_architecture",
]

log = logging.getLogger("squeezer.training.finetune")


@dataclass
class RunStart:
    """What a fine-tuning run starts with: the resolved recipe, the model, its tokenizer."""

    config: TrainConfig  # encoder, features and an absolute finetune.init filled in
    model: AsrModel  # train mode
    tokenizer: Tokenizer


def load_init(path: str | Path) -> AsrModel:
    """The model to start from: a squeezer model directory or a `.nemo` file (eval mode)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--init {path}: no such model directory or .nemo file")
    run_model = path / "model"  # `squeezer train --out RUN` writes its model to RUN/model
    if (run_model / "model.safetensors").is_file() and not (path / "model.safetensors").exists():
        raise ValueError(f"--init {path}: a training run; its model is {run_model}")
    return load_model(path)


def check_agreement(
    config: TrainConfig, encoder: EncoderConfig, features: FeatureConfig, source: str
) -> None:
    """Raise ValueError naming the first recipe field that disagrees with `source`'s model.

    Only the sections the recipe gives are checked (`encoder`, else the preset `model`;
    `features`): None means "the model's".
    """
    sections: list[tuple[str, Any, Any]] = []
    if config.encoder is not None:
        sections.append(("encoder", config.encoder, encoder))
    elif config.model is not None:
        sections.append((f"model={config.model}: encoder", config.encoder_config(), encoder))
    if config.features is not None:
        sections.append(("features", config.features, features))
    for label, ours, theirs in sections:
        names = [f.name for f in dataclasses.fields(ours)
                 if getattr(ours, f.name) != getattr(theirs, f.name)]  # fmt: skip
        if names:
            name, more = names[0], f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise ValueError(
                f"recipe {label}.{name}={getattr(ours, name)!r} disagrees with {source} "
                f"({getattr(theirs, name)!r}){more}; leave the section out to use the model's"
            )


def check_vocabulary(cuts: CutSet, tokenizer: Tokenizer, manifest: str, source: str) -> None:
    """Every transcript must be encodable when the model's vocabulary is kept.

    From scratch the tokenizer is built from this very text; a kept one may lack characters,
    and silently dropping those utterances (or training <unk>) would hide a data problem.
    """
    failed, total, first = 0, 0, ""
    for cut in cuts:
        total += 1
        try:
            tokenizer.encode(cut_text(cut))
        except ValueError as error:
            failed, first = failed + 1, first or str(error)
    if failed:
        raise ValueError(
            f"{manifest}: {failed} of {total} transcripts do not fit the vocabulary of {source} "
            f"(first: {first}); set finetune.vocabulary: new to train a new tokenizer and CTC "
            "head on this text"
        )


def initial_model(init: AsrModel, vocab_size: int, keep_head: bool) -> AsrModel:
    """A train-mode copy of `init` with its CTC head, or with a fresh head of `vocab_size`
    tokens on the same encoder and frontend (NeMo's `change_vocabulary`)."""
    model = AsrModel(init.config, vocab_size, init.frontend.config).to(init.device)
    if keep_head:
        model.load_state_dict(init.state_dict())
    else:
        model.frontend.load_state_dict(init.frontend.state_dict())
        model.encoder.load_state_dict(init.encoder.state_dict())
    return model


def _tokenizer(
    config: TrainConfig, init: AsrModel, cuts: CutSet, directory: Path, is_main: bool
) -> Tokenizer:
    """The run's tokenizer in `directory`: the init model's, or one trained on the text."""
    if is_main:
        if config.finetune.vocabulary == "keep":
            init.tokenizer.save(directory)
        else:
            tok = config.tokenizer
            texts = [cut_text(cut) for cut in cuts]
            build_tokenizer(tok.kind, texts, directory, tok.vocab_size, tok.model_type)
    barrier()
    return load_tokenizer(directory)


def start_from_init(
    config: TrainConfig, cuts: CutSet, tokenizer_dir: Path, is_main: bool
) -> RunStart:
    """Load `config.finetune.init`, check the recipe against it, and set up the run's model.

    Args:
        config: the recipe, `finetune.init` set (absolute: it is recorded in the run).
        cuts: the training manifest (for the vocabulary).
        tokenizer_dir: the run's tokenizer folder (written by the main process).
        is_main: whether this process writes files (rank 0 under torchrun).
    """
    source = config.finetune.init
    init = load_init(source)
    check_agreement(config, init.config, init.frontend.config, source)
    tokenizer = _tokenizer(config, init, cuts, tokenizer_dir, is_main)
    keep = config.finetune.vocabulary == "keep"
    if keep:
        check_vocabulary(cuts, tokenizer, config.data.train, source)
    model = initial_model(init, tokenizer.vocab_size, keep_head=keep)
    if is_main:
        log.info("fine-tuning from %s (%s vocabulary: %d tokens)", source,
                 config.finetune.vocabulary, tokenizer.vocab_size)  # fmt: skip
    return RunStart(with_architecture(config, model), model, tokenizer)


def with_architecture(config: TrainConfig, model: AsrModel) -> TrainConfig:
    """A fine-tuning recipe with the model's encoder and frontend settings written in, so the
    run's `config.yaml` records what it trained (the recipe leaves them out)."""
    return replace(config, encoder=model.config, features=model.frontend.config)


def check_no_finetuning(settings: FinetuneConfig) -> None:
    """A run without an init model must not ask for fine-tuning settings."""
    stated = {k: v for k, v in dataclasses.asdict(settings).items()
              if v != getattr(FinetuneConfig(), k)}  # fmt: skip
    if stated:
        name, value = next(iter(stated.items()))
        raise ValueError(
            f"finetune.{name}={value!r} needs a model to start from: pass --init PATH or set "
            "finetune.init"
        )


def resumed_tokenizer(directory: Path, model: AsrModel, source: str) -> Tokenizer:
    """The tokenizer a resumed run trained with (the run's `tokenizer/`), checked against the
    CTC head of checkpoint `source`."""
    tokenizer = load_tokenizer(directory)
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(f"{directory} has {tokenizer.vocab_size} tokens, the CTC head of "
                         f"{source} {model.vocab_size}")  # fmt: skip
    return tokenizer


def model_from_settings(settings: dict[str, Any]) -> AsrModel:
    """A fresh model of the architecture a checkpoint recorded (`squeezer.model.model_settings`)."""
    encoder = from_mapping(EncoderConfig, settings["encoder"], "encoder")
    features = from_mapping(FeatureConfig, settings["features"], "features")
    return AsrModel(encoder, int(settings["vocab_size"]), features)


def resumed_config(
    config: TrainConfig, recorded: dict[str, Any] | None, source: str
) -> TrainConfig:
    """The recipe a run resumed from checkpoint `source` continues under.

    A fine-tuning run keeps the fine-tuning settings it recorded (`recorded`). A recipe without
    an init does not know it fine-tunes: its architecture sections are defaults, not statements,
    so the checkpoint's architecture is used, and its finetune section (if any) must agree. A
    recipe with an init (the run's starting command, --resume added) must name the same init;
    the init is not applied again. A run trained from scratch takes no fine-tuning settings.
    """
    stated = config.finetune
    if recorded is None:
        if stated != FinetuneConfig():
            raise ValueError(
                f"{source} is from a run trained from scratch: --init and finetune settings "
                "apply only when a run starts"
            )
        return config
    run = from_mapping(FinetuneConfig, recorded, "finetune")
    if stated.init is None:
        config = replace(config, model=None, encoder=None, features=None)
        if stated == FinetuneConfig():
            return replace(config, finetune=run)
    elif Path(stated.init).resolve() != Path(run.init or "").resolve():
        raise ValueError(
            f"--init {stated.init} disagrees with {source}, which started from {run.init} "
            "(--resume continues the run; the init applies only when a run starts)"
        )
    for name in ("vocabulary", "freeze", "freeze_steps"):
        if getattr(stated, name) != getattr(run, name):
            raise ValueError(f"recipe finetune.{name}={getattr(stated, name)!r} disagrees "
                             f"with {source} ({getattr(run, name)!r})")  # fmt: skip
    return replace(config, finetune=run)
