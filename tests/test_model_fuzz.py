"""Fuzzed model directories (#16, item 7): a damaged config.yaml, model.safetensors or tokenizer
either loads as a working model or is one short line naming the file (and the tensor or key);
never another exception, never code run from a file (a pickle renamed to .safetensors included).

Every corruption is seeded, so every run tries the same ones.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import pickle
import random
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from safetensors.torch import load_file, save_file

from squeezer.cli import main
from squeezer.config import EncoderConfig
from squeezer.features import FeatureConfig
from squeezer.loading import load_model
from squeezer.model import MODEL_FORMAT, AsrModel, save_model
from squeezer.text import CharTokenizer, SentencePieceTokenizer
from tests.conftest import assert_one_line_error, flip_bytes

ENCODER = EncoderConfig(d_model=32, num_layers=2, num_heads=2, conv_kernel_size=7,
                        time_reduce_idx=None, time_recover_idx=None)  # fmt: skip
USER_ERRORS = (ValueError, FileNotFoundError)  # what `squeezer.cli.main` prints in one line
MARKER = "PWNED"
WRONG_VALUES: list[Any] = [
    [1, 2], {"a": 1}, "abc", 7, None, True, 10**30, 10**400, math.nan, -math.inf, -1.5, "",
]  # fmt: skip
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "how vexingly quick daft zebras jump",
] * 3


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A tiny model directory with a character tokenizer, as `save_model` writes it."""
    torch.manual_seed(0)
    return save_model(AsrModel(ENCODER, 28), tmp_path_factory.mktemp("char") / "model",
                      CharTokenizer())  # fmt: skip


@pytest.fixture(scope="module")
def saved_sentencepiece(tmp_path_factory) -> Path:
    """The same with a SentencePiece tokenizer (tokenizer.json + tokenizer.model)."""
    torch.manual_seed(0)
    pieces = tmp_path_factory.mktemp("pieces")
    tokenizer = SentencePieceTokenizer.train(TEXTS, pieces, vocab_size=30)
    return save_model(AsrModel(ENCODER, 30), tmp_path_factory.mktemp("spm") / "model", tokenizer)


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Iterator[Path]:
    """A working folder of its own, checked afterwards for the payloads' marker file."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not list(tmp_path.rglob(MARKER)), "a model file ran code"


def _copy(source: Path, sandbox: Path) -> Path:
    target = sandbox / "model"
    shutil.rmtree(target, ignore_errors=True)
    return Path(shutil.copytree(source, target))


def _outcome(directory: Path) -> AsrModel | Exception:
    """The loaded model, or the user error; any other exception fails the test."""
    try:
        return load_model(directory)
    except USER_ERRORS as error:
        return error


def _check(outcome: AsrModel | Exception, *names: str) -> None:
    """A model that runs, or one short line holding each of `names`.

    A model that runs need not compute anything sensible: a flipped exponent bit leaves a
    finite weight of 1e38 that loading cannot tell from a trained one.
    """
    if isinstance(outcome, AsrModel):
        assert outcome.tokenizer is not None
        assert outcome.tokenizer.vocab_size == outcome.vocab_size
        features = torch.randn(1, 40, outcome.config.input_dim)
        with torch.no_grad():
            log_probs = outcome(features, torch.tensor([40])).log_probs
        assert log_probs.shape[-1] == outcome.vocab_size + 1
        return
    assert_one_line_error(str(outcome), *names)


def _error(outcome: AsrModel | Exception, *names: str) -> str:
    assert isinstance(outcome, USER_ERRORS), f"expected an error naming {names}, got a model"
    _check(outcome, *names)
    return str(outcome)


def _replaced(tree: dict, path: tuple, value: Any) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return tree


def _settings(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "config.yaml").read_text())


def _write_settings(directory: Path, settings: Any) -> None:
    (directory / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))


class _Payload:
    """Pickles as a call to os.system: whatever unpickles it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


# -- config.yaml -------------------------------------------------------------------------------

CONFIG_LEAVES = [
    ("format",),
    ("vocab_size",),
    *(("encoder", field.name) for field in dataclasses.fields(EncoderConfig)),
    *(("features", field.name) for field in dataclasses.fields(FeatureConfig)),
]


@pytest.mark.parametrize("leaf", CONFIG_LEAVES, ids=[".".join(leaf) for leaf in CONFIG_LEAVES])
def test_a_config_value_of_the_wrong_type(saved, sandbox, leaf):
    directory = _copy(saved, sandbox)
    settings = _settings(directory)
    rng = random.Random(".".join(leaf))  # a list, a mapping and four more, drawn per key
    for value in [*WRONG_VALUES[:2], *rng.sample(WRONG_VALUES[2:], 4)]:
        _write_settings(directory, _replaced(settings, leaf, value))
        outcome = _outcome(directory)
        if isinstance(value, list | dict):
            _error(outcome, f"{directory / 'config.yaml'}: ", leaf[-1])
        else:
            _check(outcome, str(directory))


CONFIG_CHANGES = {
    "unknown top-level key": (lambda s: {**s, "extra": 1}, "unknown key(s) 'extra'"),
    "unknown encoder key": (lambda s: _replaced(s, ("encoder", "d_modle"), 3), "encoder.d_modle"),
    "unknown features key": (lambda s: _replaced(s, ("features", "nmels"), 3), "features.nmels"),
    "no format": (lambda s: {k: v for k, v in s.items() if k != "format"}, "not a squeezer"),
    "another format": (lambda s: {**s, "format": "squeezer-ctc-v0"}, "not a squeezer-ctc-v1"),
    "no vocab_size": (lambda s: {k: v for k, v in s.items() if k != "vocab_size"}, "vocab_size"),
    "no encoder": (lambda s: {k: v for k, v in s.items() if k != "encoder"}, "encoder"),
    "no features": (lambda s: {k: v for k, v in s.items() if k != "features"}, "features"),
    "vocab_size 0": (lambda s: {**s, "vocab_size": 0}, "vocab_size"),
    "vocab_size as text": (lambda s: {**s, "vocab_size": "28"}, "vocab_size"),
    "vocab_size as a float": (lambda s: {**s, "vocab_size": 28.0}, "vocab_size"),
    "vocab_size one more": (lambda s: {**s, "vocab_size": 29}, "ctc_head.linear.weight"),
    "fewer blocks": (lambda s: _replaced(s, ("encoder", "num_layers"), 1), "encoder.blocks.1"),
    "more blocks": (lambda s: _replaced(s, ("encoder", "num_layers"), 3), "encoder.blocks.2"),
    "a million blocks": (
        lambda s: _replaced(s, ("encoder", "num_layers"), 10**6),
        "too few for encoder.num_layers=1000000",
    ),
    "a wider encoder": (lambda s: _replaced(s, ("encoder", "d_model"), 64), "has shape"),
    "a huge encoder": (lambda s: _replaced(s, ("encoder", "d_model"), 2**20), "has shape"),
    "an encoder torch cannot build": (
        lambda s: _replaced(s, ("encoder", "d_model"), 2**62),
        "the encoder cannot be built",
    ),
    "invalid sizes": (lambda s: _replaced(s, ("encoder", "num_heads"), 3), "num_heads=3"),
    "bad Literal": (lambda s: _replaced(s, ("encoder", "block_layout"), "macaron"), "macaron"),
    "n_mels unlike input_dim": (lambda s: _replaced(s, ("features", "n_mels"), 64), "n_mels=64"),
    "global normalisation without its statistics": (
        lambda s: _replaced(s, ("features", "normalize"), "global"),
        "frontend.global_mean is missing",
    ),
    "a list": (lambda s: [s], "not a squeezer-ctc-v1"),
    "null": (lambda s: None, "not a squeezer-ctc-v1"),
    "a string": (lambda s: "squeezer-ctc-v1", "not a squeezer-ctc-v1"),
    "integer keys": (lambda s: _replaced(s, ("encoder", 5), 1), "keys must be names"),
}


@pytest.mark.parametrize("name", list(CONFIG_CHANGES))
def test_a_config_that_does_not_describe_the_weights(saved, sandbox, name):
    directory = _copy(saved, sandbox)
    change, message = CONFIG_CHANGES[name]
    _write_settings(directory, change(_settings(directory)))
    _error(_outcome(directory), str(directory), message)


CONFIG_TEXTS = {
    "empty": "",
    "python tag as a value": "format: !!python/object/apply:os.system ['touch PWNED']\n",
    "python tag in the encoder": "encoder: {d_model: !!python/object/new:os.system [x]}\n",
    "python tag as the document": "!!python/object/apply:os.system ['touch PWNED']\n",
    "python name": "vocab_size: !!python/name:os.system\n",
    "bad tagged scalar": "vocab_size: !!int twenty-eight\n",
    "broken YAML": "format: [squeezer-ctc-v1\n",
    "deep nesting": "encoder: " + "[" * 1200 + "]" * 1200 + "\n",
    "alias bomb": "a: &a [1, 1, 1, 1]\nb: &b [*a, *a, *a, *a]\nvocab_size: [*b, *b, *b, *b]\n",
}


@pytest.mark.parametrize("name", list(CONFIG_TEXTS))
def test_a_config_that_is_not_a_plain_mapping(saved, sandbox, name):
    directory = _copy(saved, sandbox)
    text = CONFIG_TEXTS[name].replace("PWNED", str(sandbox / MARKER))
    (directory / "config.yaml").write_text(text)
    _error(_outcome(directory), f"{directory / 'config.yaml'}: ")


def test_config_bytes_that_are_not_text(saved, sandbox):
    directory = _copy(saved, sandbox)
    config = directory / "config.yaml"
    for data in [b"\xff\xfe" + config.read_bytes(), pickle.dumps(_Payload(sandbox / MARKER))]:
        config.write_bytes(data)
        _error(_outcome(directory), f"{config}: ")


def _check_flipped(directory: Path, name: str, named: str) -> None:
    """30 seeded copies of `directory/name` with 1-3 bytes flipped: each loads or names `named`."""
    original = (directory / name).read_bytes()
    for seed in range(30):
        rng = random.Random(seed)
        (directory / name).write_bytes(flip_bytes(original, rng, rng.randint(1, 3)))
        _check(_outcome(directory), named)


def test_flipped_config_bytes(saved, sandbox):
    directory = _copy(saved, sandbox)
    _check_flipped(directory, "config.yaml", str(directory))


# -- model.safetensors -------------------------------------------------------------------------


def _state(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def _write_state(directory: Path, state: dict[str, torch.Tensor]) -> None:
    save_file(state, str(directory / "model.safetensors"), metadata={"format": MODEL_FORMAT})


WEIGHT = "ctc_head.linear.weight"
COUNTER = "encoder.blocks.0.conv.batch_norm.num_batches_tracked"


def _with(name: str, tensor: torch.Tensor):
    return lambda state: {**state, name: tensor}


def _without(name: str):
    return lambda state: {k: v for k, v in state.items() if k != name}


STATE_CHANGES = {
    "a transposed weight": (lambda s: _with(WEIGHT, s[WEIGHT].T.contiguous())(s),
                            f"tensor {WEIGHT} has shape (32, 29), the config needs (29, 32)"),
    "a flattened weight": (lambda s: _with(WEIGHT, s[WEIGHT].flatten())(s), f"{WEIGHT} has shape"),
    "a scalar for a vector": (lambda s: _with("ctc_head.linear.bias", torch.tensor(1.0))(s),
                              "ctc_head.linear.bias has shape ()"),
    "a missing tensor": (_without(WEIGHT), f"tensor {WEIGHT} is missing"),
    "every tensor missing": (lambda s: {}, "0 tensors, too few for encoder.num_layers=2"),
    "an extra tensor": (_with("encoder.extra", torch.zeros(3)), "tensor 'encoder.extra' is extra"),
    "a renamed tensor": (lambda s: {("x" + k if k == WEIGHT else k): v for k, v in s.items()},
                         f"tensor {WEIGHT} is missing"),
    "float64": (lambda s: _with(WEIGHT, s[WEIGHT].double())(s), f"{WEIGHT} is F64"),
    "int8": (lambda s: _with(WEIGHT, s[WEIGHT].to(torch.int8))(s), f"{WEIGHT} is I8"),
    "int32": (lambda s: _with(WEIGHT, s[WEIGHT].to(torch.int32))(s), f"{WEIGHT} is I32"),
    "bool": (lambda s: _with(WEIGHT, s[WEIGHT] > 0)(s), f"{WEIGHT} is BOOL"),
    "complex": (lambda s: _with(WEIGHT, s[WEIGHT].to(torch.complex64))(s), f"{WEIGHT} is C64"),
    "a float counter": (lambda s: _with(COUNTER, s[COUNTER].float())(s), f"{COUNTER} is F32"),
    "a NaN weight": (lambda s: _with(WEIGHT, s[WEIGHT].clone().fill_(math.nan))(s),
                     f"tensor {WEIGHT} holds NaN or infinite values"),
    "an infinite weight": (lambda s: _with(WEIGHT, s[WEIGHT].clone().fill_(math.inf))(s),
                           f"tensor {WEIGHT} holds NaN"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(STATE_CHANGES))
def test_weights_that_do_not_fit_the_config(saved, sandbox, name):
    directory = _copy(saved, sandbox)
    change, message = STATE_CHANGES[name]
    _write_state(directory, change(_state(directory)))
    _error(_outcome(directory), f"{directory / 'model.safetensors'}: ", message)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_widen_exactly(saved, sandbox, dtype):
    """float16 and bfloat16 hold only values float32 holds: they load, value for value."""
    directory = _copy(saved, sandbox)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in _state(directory).items()}
    state[COUNTER] = state[COUNTER].to(torch.int32)  # a narrower counter widens exactly too
    _write_state(directory, state)
    model = _outcome(directory)
    _check(model)
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == (torch.int64 if "num_batches" in name else torch.float32)
        assert torch.equal(tensor, state[name].to(tensor.dtype)), name


def _header(entries: Any) -> bytes:
    header = json.dumps(entries).encode()
    return struct.pack("<Q", len(header)) + header


def _not_safetensors(directory: Path, sandbox: Path, rng: random.Random) -> dict[str, bytes]:
    original = (directory / "model.safetensors").read_bytes()
    (header_size,) = struct.unpack("<Q", original[:8])
    marker = sandbox / MARKER
    pickles = {}
    for name, value in [("torch.save of the state", _state(directory)),
                        ("torch.save of a payload", {"w": _Payload(marker)})]:  # fmt: skip
        for zipped in (True, False):
            path = sandbox / "pickle.pt"
            torch.save(value, path, _use_new_zipfile_serialization=zipped)
            pickles[f"{name} ({'zip' if zipped else 'legacy'})"] = path.read_bytes()
    return {
        "zero bytes": b"",
        "four bytes": original[:4],
        "the header only": original[: 8 + header_size],
        "half the file": original[: len(original) // 2],
        "all but the last byte": original[:-1],
        "random bytes": rng.randbytes(4096),
        "a plain pickle payload": pickle.dumps(_Payload(marker)),
        **pickles,
        "a header of 2**60 bytes": struct.pack("<Q", 2**60) + original[8:],
        "a header that is a list": _header([1, 2]),
        "a header that is not JSON": struct.pack("<Q", 5) + b"{abc}",
        "an unknown dtype": _header({WEIGHT: {"dtype": "X9", "shape": [29, 32],
                                              "data_offsets": [0, 3712]}}) + bytes(3712),
        "offsets beyond the file": _header({WEIGHT: {"dtype": "F32", "shape": [29, 32],
                                                     "data_offsets": [0, 3712]}}) + bytes(16),
        "a negative shape": _header({WEIGHT: {"dtype": "F32", "shape": [-29, 32],
                                              "data_offsets": [0, 0]}}),
        "metadata that is not text": _header({"__metadata__": {"format": 1}}),
    }  # fmt: skip


@pytest.mark.parametrize("tokenizer", ["char", "sentencepiece"])
def test_files_that_are_not_safetensors(saved, saved_sentencepiece, sandbox, tokenizer):
    source = saved if tokenizer == "char" else saved_sentencepiece
    directory = _copy(source, sandbox)
    weights = directory / "model.safetensors"
    cases = _not_safetensors(directory, sandbox, random.Random(0))
    for name, data in cases.items():
        weights.write_bytes(data)
        message = _error(_outcome(directory), f"{weights}: ")
        assert name not in ("zero bytes", "random bytes") or "not a safetensors file" in message
    assert not (sandbox / MARKER).exists()
    weights.unlink()
    _error(_outcome(directory), f"{weights}: no such file")
    weights.mkdir()
    _error(_outcome(directory), f"{weights}: no such file")


def test_flipped_weight_bytes(saved, sandbox):
    """Flips in the header break it; flips in the data change weights (or make NaNs)."""
    directory = _copy(saved, sandbox)
    original = (directory / "model.safetensors").read_bytes()
    (header_size,) = struct.unpack("<Q", original[:8])
    for seed in range(30):
        rng, data = random.Random(seed), bytearray(original)
        end = 8 + header_size if seed % 2 else len(data)  # half in the header, half anywhere
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(end)] = rng.randrange(256)
        (directory / "model.safetensors").write_bytes(data)
        _check(_outcome(directory), str(directory / "model.safetensors"))


# -- the tokenizer -----------------------------------------------------------------------------


def _json(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "tokenizer.json").read_text())


TOKENIZER_JSON = {
    "missing": (None, "tokenizer.json: no such tokenizer file"),
    "empty": ("", "not valid JSON"),
    "not JSON": ("kind: char", "not valid JSON"),
    "a list": ("[1, 2]", "expected a JSON object, got list"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    "a 5000-digit number": ('{"kind": ' + "9" * 5000 + "}", "not valid JSON"),
    "not UTF-8": (b'{"kind": "\xff"}', "not valid JSON"),
    "another normaliser": (lambda s: {**s, "normalizer": "v0"}, "rebuild the tokenizer"),
    "an unknown kind": (lambda s: {**s, "kind": "bpe"}, "unknown tokenizer kind 'bpe'"),
    "a kind that is a list": (lambda s: {**s, "kind": [1] * 1000}, "unknown tokenizer kind"),
    "symbols that are text": (lambda s: {**s, "symbols": "abc"}, "'symbols' must be a list"),
    "symbols that are numbers": (lambda s: {**s, "symbols": [" ", 2]}, "got 2 in it"),
    "a null symbol": (lambda s: {**s, "symbols": [" ", None]}, "got None in it"),
    "a list symbol": (lambda s: {**s, "symbols": [" ", ["a"]]}, "got ['a'] in it"),
    "symbols of two characters": (lambda s: {**s, "symbols": [" ", "ab"]}, "single characters"),
    "repeated symbols": (lambda s: {**s, "symbols": [" ", "a", "a"]}, "distinct"),
    "no space first": (lambda s: {**s, "symbols": ["a", " "]}, "first symbol"),
    "fewer symbols than the head": (lambda s: {**s, "symbols": [" ", "a"]},
                                    "2 tokens, but"),
    "an unknown decode style": (lambda s: {**s, "decode_style": {"x": 1}}, "decode_style"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TOKENIZER_JSON))
def test_a_broken_character_tokenizer(saved, sandbox, name):
    directory = _copy(saved, sandbox)
    path = directory / "tokenizer.json"
    content, message = TOKENIZER_JSON[name]
    if content is None:
        path.unlink()
    elif callable(content):
        path.write_text(json.dumps(content(_json(directory))))
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    _error(_outcome(directory), f"{path}: ", message)


SENTENCEPIECE_CHANGES = {
    "no model file": (lambda d: (d / "tokenizer.model").unlink(), "is missing"),
    "zero bytes": (lambda d: (d / "tokenizer.model").write_bytes(b""), "tokenizer.model: "),
    "random bytes": (lambda d: (d / "tokenizer.model").write_bytes(random.Random(1).randbytes(999)),
                     "tokenizer.model: not a SentencePiece model"),
    "half the file": (lambda d: (d / "tokenizer.model").write_bytes(
        (d / "tokenizer.model").read_bytes()[:300]), "tokenizer.model: "),
    "a pickle": (lambda d: (d / "tokenizer.model").write_bytes(pickle.dumps(_Payload(d / MARKER))),
                 "tokenizer.model: "),
    "a model file outside the folder": (
        lambda d: (d / "tokenizer.json").write_text(json.dumps({**_json(d),
                                                               "model_file": "../x.model"})),
        "model_file must be a file name"),
    "a different piece count": (
        lambda d: (d / "tokenizer.json").write_text(json.dumps({**_json(d), "vocab_size": 31})),
        "30 pieces, but"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SENTENCEPIECE_CHANGES))
def test_a_broken_sentencepiece_tokenizer(saved_sentencepiece, sandbox, name):
    directory = _copy(saved_sentencepiece, sandbox)
    change, message = SENTENCEPIECE_CHANGES[name]
    change(directory)
    _error(_outcome(directory), str(directory), message)
    assert not (directory / MARKER).exists()


def test_flipped_sentencepiece_bytes(saved_sentencepiece, sandbox):
    directory = _copy(saved_sentencepiece, sandbox)
    _check_flipped(directory, "tokenizer.model", str(directory / "tokenizer.model"))


# -- through the command line and the other entry point ----------------------------------------

CLI_CASES = {
    "a pickle for weights": lambda d, m: (d / "model.safetensors").write_bytes(
        pickle.dumps(_Payload(m))
    ),
    "a python tag in the config": lambda d, m: (d / "config.yaml").write_text(
        f"format: !!python/object/apply:os.system ['touch {m}']\n"
    ),
    "float64 weights": lambda d, m: _write_state(
        d, {k: v.double() if v.is_floating_point() else v for k, v in _state(d).items()}
    ),
    "a transposed weight": lambda d, m: _write_state(
        d, {**_state(d), WEIGHT: _state(d)[WEIGHT].T.contiguous()}
    ),
    "no tokenizer": lambda d, m: (d / "tokenizer.json").unlink(),
    "no config": lambda d, m: (d / "config.yaml").unlink(),
    # SentencePiece takes empty bytes for "no model" and logs to file descriptor 2 about it
    "an empty SentencePiece model": lambda d, m: (d / "tokenizer.model").write_bytes(b""),
    "a random SentencePiece model": lambda d, m: (d / "tokenizer.model").write_bytes(
        random.Random(2).randbytes(500)
    ),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_transcribe_prints_one_line_and_exits_2(saved, saved_sentencepiece, sandbox, capfd, name):
    """capfd, not capsys: native code (SentencePiece, torch) writes to the descriptor."""
    directory = _copy(saved_sentencepiece if "SentencePiece" in name else saved, sandbox)
    CLI_CASES[name](directory, sandbox / MARKER)
    audio = sandbox / "a.wav"
    sf.write(audio, np.zeros(8000, dtype=np.float32), 16000)
    capfd.readouterr()
    assert main(["transcribe", str(directory), str(audio)]) == 2
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"squeezer transcribe: error: {directory}/")
    assert captured.out == ""


def test_a_weights_file_given_for_the_directory(saved, sandbox):
    """A file is taken for a .nemo archive: a safetensors file is one line saying it is not."""
    directory = _copy(saved, sandbox)
    (directory / "model.safetensors").write_bytes(pickle.dumps(_Payload(sandbox / MARKER)))
    for path in [directory / "model.safetensors", directory / "config.yaml"]:
        _error(_outcome(path), f"{path}: not a .nemo archive")
