"""`.nemo` CTC checkpoints -> squeezer models: `load_nemo` in memory, `import_nemo` to a directory.

    squeezer import-nemo stt_en_squeezeformer_ctc_xsmall_ls.nemo --out models/sq-xs

Supported: `EncDecCTCModelBPE` (SentencePiece) and the character `EncDecCTCModel`, with a
`SqueezeformerEncoder` or `ConformerEncoder` (see `squeezer.nemo.config` for the keys). NeMo's
blank (last output) becomes squeezer's blank 0 and every other token id moves up by one, which
is exactly squeezer's id = vocabulary index + 1; the tokenizer decodes in NeMo's style, so the
greedy text is NeMo's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from squeezer.model import AsrModel, save_model
from squeezer.nemo.archive import NemoArchive, NemoImportError, read_nemo
from squeezer.nemo.config import encoder_config, feature_config, module_section
from squeezer.nemo.weights import PREPROCESSOR_FILTERBANK, PREPROCESSOR_WINDOW, convert_state
from squeezer.text import CharTokenizer, SentencePieceTokenizer, Tokenizer

__all__ = ["import_nemo", "load_nemo"]

MODEL_CLASSES = ("EncDecCTCModelBPE", "EncDecCTCModel")
DECODER = "ConvASRDecoder"
FRONTEND_TOLERANCE = 1e-6  # the stored mel filters and window against squeezer's


def _tokenizer(archive: NemoArchive) -> Tokenizer:
    """NeMo's vocabulary as a squeezer tokenizer (id = NeMo id + 1), decoding as NeMo does."""
    config = archive.config
    target = str(config.get("target", "")).rpartition(".")[2]
    if target and target not in MODEL_CLASSES:
        raise NemoImportError(
            f"unsupported model class {target!r}: squeezer reads {' and '.join(MODEL_CLASSES)}"
        )
    section = config.get("tokenizer")
    if isinstance(section, dict):
        if section.get("type") != "bpe":
            raise NemoImportError(f"unsupported tokenizer.type={section.get('type')!r}")
        reference = section.get("model_path")
        if not isinstance(reference, str):
            raise NemoImportError(f"tokenizer.model_path={reference!r} names no file")
        try:
            return SentencePieceTokenizer(archive.artifact(reference), decode_style="nemo")
        except ValueError as error:
            raise NemoImportError(f"{archive.path}: {reference}: {error}") from None
    _, decoder = module_section(config, "decoder")
    labels = decoder.get("vocabulary") or config.get("labels")
    if not isinstance(labels, list) or not labels:
        raise NemoImportError("no tokenizer section and no decoder.vocabulary labels")
    try:
        return CharTokenizer([str(label) for label in labels], decode_style="nemo")
    except ValueError as error:
        raise NemoImportError(f"decoder.vocabulary: {error}") from None


def _check_decoder(config: dict[str, Any], d_model: int, vocab_size: int) -> None:
    target, decoder = module_section(config, "decoder")
    if target != DECODER:
        raise NemoImportError(f"unsupported decoder._target_ {target!r}: squeezer reads {DECODER}")
    for key, value in decoder.items():
        if key == "add_blank" and value is not True:
            raise NemoImportError(f"unsupported decoder.add_blank={value!r}")
        if key not in ("feat_in", "num_classes", "vocabulary", "init_mode", "add_blank"):
            raise NemoImportError(f"unsupported decoder key {key!r} (value {value!r})")
    if decoder.get("feat_in") not in (None, d_model):
        raise NemoImportError(f"decoder.feat_in={decoder['feat_in']} != encoder d_model={d_model}")
    if decoder.get("num_classes") not in (None, -1, vocab_size):
        raise NemoImportError(
            f"decoder.num_classes={decoder['num_classes']} != the tokenizer's {vocab_size} tokens"
        )


def _check_frontend(archive: NemoArchive, model: AsrModel) -> None:
    """The stored window and mel filters must be the ones squeezer derives from the config."""
    ours = {
        PREPROCESSOR_WINDOW: model.frontend.window,
        PREPROCESSOR_FILTERBANK: model.frontend.mel_basis.T.unsqueeze(0),  # (1, F, K)
    }
    for key, expected in ours.items():
        stored = archive.state.get(key)
        if stored is None:
            continue  # NeMo recomputes it from the config too
        if stored.shape != expected.shape:
            raise NemoImportError(
                f"shape mismatch for {key}: the file has {tuple(stored.shape)}, the "
                f"preprocessor config implies {tuple(expected.shape)}"
            )
        difference = (stored.float() - expected).abs().max().item()
        if difference > FRONTEND_TOLERANCE:
            raise NemoImportError(f"{key} differs from the preprocessor config's by {difference}")
    unknown = sorted(
        key for key in archive.state if key.startswith("preprocessor.") and key not in ours
    )
    if unknown:
        raise NemoImportError(f"unexpected NeMo weight {unknown[0]!r}")


def load_nemo(path: str | Path, device: str | torch.device = "cpu") -> AsrModel:
    """Read a `.nemo` CTC checkpoint into an eval-mode `AsrModel` with its tokenizer attached."""
    archive = read_nemo(path)
    try:
        encoder, _ = encoder_config(archive.config)
        features = feature_config(archive.config)
        tokenizer = _tokenizer(archive)
        _check_decoder(archive.config, encoder.d_model, tokenizer.vocab_size)
        model = AsrModel(encoder, tokenizer.vocab_size, features)
        _check_frontend(archive, model)
        state = convert_state(archive.state, encoder, model.state_dict())
    except NemoImportError as error:
        raise NemoImportError(f"{archive.path}: {error}") from None
    model.load_state_dict(state, strict=True)
    model.tokenizer = tokenizer
    return model.to(device).eval()


def import_nemo(path: str | Path, directory: str | Path) -> Path:
    """Convert a `.nemo` CTC checkpoint into a squeezer model directory; returns it."""
    model = load_nemo(path)
    return save_model(model, directory, model.tokenizer)
