from __future__ import annotations

import pytest
import torch

from squeezer.training.checkpoints import (
    average_model_states,
    checkpoint_paths,
    latest_checkpoint,
    load_checkpoint,
    newest_readable_checkpoint,
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


def _state(step: int) -> dict:
    """A training checkpoint's shape: the keys --resume needs, small tensors."""
    return {"model": {"w": torch.full((3,), float(step))}, "optimizer": {}, "scheduler": {},
            "train_state": {"step": step}}  # fmt: skip


def _corrupt(path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(torch.randint(0, 256, (len(data),), dtype=torch.uint8).numpy().tobytes())
    elif kind == "foreign":  # a readable torch file that is no training checkpoint
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        raise ValueError(kind)


@pytest.mark.parametrize("kind", ["truncated", "empty", "random", "foreign"])
def test_resume_skips_a_corrupt_newest_checkpoint_with_a_warning(tmp_path, caplog, kind):
    for step in (5, 10, 15):
        save_checkpoint(_state(step), tmp_path, step, 3)
    _corrupt(tmp_path / "checkpoint-000000015.pt", kind)
    path, state = newest_readable_checkpoint(tmp_path)
    assert path.name == "checkpoint-000000010.pt" and state["train_state"]["step"] == 10
    assert "checkpoint-000000015.pt" in caplog.text and "skipping" in caplog.text


def test_resume_with_no_readable_checkpoint_is_a_one_line_error(tmp_path):
    assert newest_readable_checkpoint(tmp_path) is None  # nothing yet: the run starts
    for step, kind in ((5, "empty"), (10, "truncated")):
        save_checkpoint(_state(step), tmp_path, step, 3)
        _corrupt(tmp_path / f"checkpoint-{step:09d}.pt", kind)
    with pytest.raises(ValueError, match="none of its 2 checkpoints is readable") as error:
        newest_readable_checkpoint(tmp_path)
    assert "\n" not in str(error.value)


def test_a_full_disk_while_checkpointing_is_a_one_line_error(tmp_path, monkeypatch):
    """ENOSPC mid-write: the error names the checkpoint, the earlier ones stay readable, and
    no temporary file is left behind."""
    import errno

    save_checkpoint(_state(5), tmp_path, 5, 3)
    real_save = torch.save

    def full_disk(state, path):
        real_save(state, path)  # a partial file exists when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RuntimeError, match=r"checkpoint-000000010\.pt: cannot write") as error:
        save_checkpoint(_state(10), tmp_path, 10, 3)
    assert "No space left on device" in str(error.value) and "\n" not in str(error.value)
    assert [p.name for p in checkpoint_paths(tmp_path)] == ["checkpoint-000000005.pt"]
    assert load_checkpoint(tmp_path / "checkpoint-000000005.pt")["train_state"]["step"] == 5
    assert list(tmp_path.iterdir()) == [tmp_path / "checkpoint-000000005.pt"]
