"""Bad .nemo files: each a one-line NemoImportError (a ValueError) naming the problem."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from squeezer.cli import main
from squeezer.nemo import NemoImportError, load_nemo, read_nemo

FIXTURE = Path(__file__).parent.parent / "fixtures" / "nemo" / "conformer_striding_bpe.nemo"


def _members() -> dict[str, bytes]:
    with tarfile.open(FIXTURE) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


def _write(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _rewrite(
    path: Path,
    config: Callable[[dict], None] | None = None,
    state: Callable[[dict], None] | None = None,
) -> Path:
    """The fixture with its config and/or weights edited in place by the given functions."""
    members = _members()
    if config is not None:
        values = yaml.safe_load(members["./model_config.yaml"])
        config(values)
        members["./model_config.yaml"] = yaml.safe_dump(values).encode()
    if state is not None:
        weights = torch.load(io.BytesIO(members["./model_weights.ckpt"]), weights_only=True)
        state(weights)
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        members["./model_weights.ckpt"] = buffer.getvalue()
    return _write(path, members)


def _error(path: Path) -> str:
    with pytest.raises(NemoImportError) as caught:
        load_nemo(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_gzipped_archive_reads_like_a_plain_one(tmp_path: Path) -> None:
    archive = read_nemo(_write(tmp_path / "model.nemo", _members(), mode="w:gz"))
    assert archive.config["encoder"]["d_model"] == 32
    assert "decoder.decoder_layers.0.weight" in archive.state


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.nemo"
    path.write_bytes(FIXTURE.read_bytes()[: FIXTURE.stat().st_size // 2])
    assert "truncated" in _error(path)


def test_file_that_is_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "model.nemo"
    path.write_text("model_config.yaml\n")
    assert "not a .nemo archive" in _error(path)


def test_missing_weights_file(tmp_path: Path) -> None:
    members = {k: v for k, v in _members().items() if not k.endswith("model_weights.ckpt")}
    assert "no model_weights.ckpt" in _error(_write(tmp_path / "model.nemo", members))


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "./a/../../evil.txt"])
def test_member_escaping_the_archive(tmp_path: Path, name: str) -> None:
    members = {**_members(), name: b"x"}
    assert "unsafe member name" in _error(_write(tmp_path / "model.nemo", members))


def test_shape_mismatch(tmp_path: Path) -> None:
    key = "encoder.layers.1.feed_forward1.linear1.weight"

    def shrink(state: dict) -> None:
        state[key] = state[key][:-1]

    message = _error(_rewrite(tmp_path / "model.nemo", state=shrink))
    assert "shape mismatch for encoder.blocks.1.ff1.linear1.weight" in message


def test_unknown_encoder_class(tmp_path: Path) -> None:
    def swap(config: dict) -> None:
        config["encoder"]["_target_"] = "nemo.collections.asr.modules.ConvASREncoder"

    assert "unsupported encoder._target_ 'ConvASREncoder'" in _error(
        _rewrite(tmp_path / "model.nemo", config=swap)
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("self_attention_model", "abs_pos", "unsupported encoder.self_attention_model='abs_pos'"),
        ("conv_norm_type", "layer_norm", "unsupported encoder.conv_norm_type='layer_norm'"),
        ("subsampling", "vggnet", "unsupported encoder.subsampling='vggnet'"),
        ("att_context_size", [70, 13], "unsupported encoder.att_context_size=[70, 13]"),
        ("conv_context_size", "causal", "unsupported encoder.conv_context_size='causal'"),
        ("new_fancy_key", 3, "unsupported encoder key 'new_fancy_key'"),
    ],
)
def test_unsupported_encoder_setting(tmp_path: Path, key: str, value, expected: str) -> None:
    def edit(config: dict) -> None:
        config["encoder"][key] = value

    assert expected in _error(_rewrite(tmp_path / "model.nemo", config=edit))


def test_unsupported_model_class(tmp_path: Path) -> None:
    def edit(config: dict) -> None:
        config["target"] = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"

    assert "unsupported model class 'EncDecRNNTBPEModel'" in _error(
        _rewrite(tmp_path / "model.nemo", config=edit)
    )


def test_leftover_weight(tmp_path: Path) -> None:
    def extra(state: dict) -> None:
        state["encoder.layers.0.self_attn.linear_extra.weight"] = torch.zeros(2)

    message = _error(_rewrite(tmp_path / "model.nemo", state=extra))
    assert "encoder.layers.0.self_attn.linear_extra.weight" in message


def test_missing_weight(tmp_path: Path) -> None:
    def drop(state: dict) -> None:
        del state["encoder.layers.1.conv.batch_norm.running_var"]

    message = _error(_rewrite(tmp_path / "model.nemo", state=drop))
    assert "encoder.blocks.1.conv.batch_norm.running_var" in message


@dataclass
class Payload:
    """Not a tensor: a weights_only load must refuse to rebuild it."""

    value: int = 1


def test_weights_are_never_unpickled_beyond_tensors(tmp_path: Path) -> None:
    def smuggle(state: dict) -> None:
        state["encoder.payload"] = Payload()

    assert "model_weights.ckpt is not readable" in _error(
        _rewrite(tmp_path / "model.nemo", state=smuggle)
    )


def test_cli_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.nemo"
    path.write_bytes(b"\x1f\x8b not really gzip")
    assert main(["import-nemo", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("squeezer import-nemo: error: ") and "\n" not in error


def _sinusoids(length: int, d_model: int) -> torch.Tensor:
    """NeMo's RelPositionalEncoding table for distances length-1 .. -(length-1): (1, 2L-1, D)."""
    positions = torch.arange(length - 1, -length, -1, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2) * -(torch.log(torch.tensor(1e4)) / d_model))
    table = torch.zeros(2 * length - 1, d_model)
    table[:, 0::2] = torch.sin(positions * inv_freq)
    table[:, 1::2] = torch.cos(positions * inv_freq)
    return table.unsqueeze(0)


def test_older_files_with_a_stored_sinusoid_table_and_no_batch_counts(tmp_path: Path) -> None:
    def older(state: dict) -> None:
        state["encoder.pos_enc.pe"] = _sinusoids(50, 32)
        for key in [k for k in state if k.endswith("num_batches_tracked")]:
            del state[key]

    model = load_nemo(_rewrite(tmp_path / "model.nemo", state=older))
    assert int(model.encoder.blocks[0].conv.batch_norm.num_batches_tracked) == 0


def test_a_stored_sinusoid_table_that_is_not_one(tmp_path: Path) -> None:
    def wrong(state: dict) -> None:
        state["encoder.pos_enc.pe"] = _sinusoids(50, 32) + 0.1

    assert "is not the sinusoid table" in _error(_rewrite(tmp_path / "model.nemo", state=wrong))
