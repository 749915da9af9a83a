from __future__ import annotations

import pytest
import torch

from squeezer.checkpoint import (
    average_model_states,
    checkpoint_paths,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def test_keeps_the_last_k_and_round_trips(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint({"step": step, "w": torch.full((2,), float(step))}, tmp_path, step, 2)
    assert [p.name for p in checkpoint_paths(tmp_path)] == [
        "checkpoint-000000030.pt",
        "checkpoint-000000040.pt",
    ]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 40 and torch.equal(state["w"], torch.full((2,), 40.0))
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_interrupted_write_is_ignored(tmp_path):
    save_checkpoint({"step": 1}, tmp_path, 1, 3)
    (tmp_path / ".checkpoint-000000002.pt.tmp").write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path).name == "checkpoint-000000001.pt"


def test_broken_or_missing_checkpoints_name_the_file(tmp_path):
    broken = tmp_path / "checkpoint-000000005.pt"
    broken.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="checkpoint-000000005"):
        load_checkpoint(broken)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_checkpoints_never_unpickle_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "checkpoint-000000001.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_average_of_model_states():
    states = [
        {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)},
        {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)},
    ]
    averaged = average_model_states(states)
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0]))
    assert int(averaged["n"]) == 9
    with pytest.raises(ValueError, match="different parameter names"):
        average_model_states([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
