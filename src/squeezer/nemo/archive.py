"""Read a `.nemo` file safely: a tar archive (plain or gzip) of a config, weights and tokenizer.

Nothing in the archive is executed, extracted to disk or unpickled except the weights, which
`torch.load(weights_only=True)` reads as plain tensors. Member names with an absolute path or a
`..` component are rejected outright (a crafted archive could otherwise aim a careless
extractor outside its folder), links and devices are rejected, and every size is checked
before a byte is read.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch
import yaml

__all__ = ["CONFIG_MEMBER", "WEIGHTS_MEMBER", "NemoArchive", "NemoImportError", "read_nemo"]

CONFIG_MEMBER = "model_config.yaml"
WEIGHTS_MEMBER = "model_weights.ckpt"
MAX_CONFIG_BYTES = 16 * 2**20
MAX_ARTIFACT_BYTES = 64 * 2**20  # tokenizer files
MAX_WEIGHTS_BYTES = 8 * 2**30  # the largest published CTC models are ~0.5 GB


class NemoImportError(ValueError):
    """A `.nemo` file that squeezer cannot read or does not support; the message is one line."""


@dataclass
class NemoArchive:
    """What a `.nemo` file holds: its config, its weights and its other files by name."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    files: dict[str, bytes] = field(default_factory=dict)

    def artifact(self, reference: str) -> bytes:
        """The bytes of a file the config names, e.g. "nemo:0a1b_tokenizer.model"."""
        name = PurePosixPath(reference.removeprefix("nemo:")).name
        if name in self.files:
            return self.files[name]
        raise NemoImportError(f"{self.path}: the config names {reference!r}, not in the archive")


def _member_name(path: Path, member: tarfile.TarInfo) -> str | None:
    """The member's file name, or None for the archive's root folder; rejects unsafe members."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise NemoImportError(f"{path}: unsafe member name {member.name!r} (absolute or '..')")
    if member.isdir():
        return None
    if not member.isfile():
        raise NemoImportError(f"{path}: member {member.name!r} is not a regular file")
    parts = [part for part in name.parts if part != "."]
    return "/".join(parts)


def _read_member(
    path: Path, archive: tarfile.TarFile, member: tarfile.TarInfo, limit: int
) -> bytes:
    if member.size > limit:
        raise NemoImportError(f"{path}: {member.name} is {member.size} bytes, over {limit}")
    stream = archive.extractfile(member)
    data = stream.read() if stream is not None else b""
    if len(data) != member.size:
        raise NemoImportError(f"{path}: {member.name} is truncated ({len(data)} of {member.size})")
    return data


def _load_config(path: Path, data: bytes) -> dict[str, Any]:
    try:
        config = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0]
        raise NemoImportError(f"{path}: {CONFIG_MEMBER} is not valid YAML ({reason})") from None
    if not isinstance(config, dict):
        raise NemoImportError(f"{path}: {CONFIG_MEMBER} is not a mapping")
    return config


def _load_weights(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe pickles
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NemoImportError(f"{path}: {WEIGHTS_MEMBER} is not readable ({reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning checkpoint's layout
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise NemoImportError(f"{path}: {WEIGHTS_MEMBER} is not a mapping of names to tensors")
    return state


def read_nemo(path: str | Path) -> NemoArchive:
    """Open `path`, check every member, and read the config, weights and other files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with tarfile.open(path, mode="r:*") as archive:
            return _read_members(path, archive)
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        lines = [line.strip(" -") for line in str(error).splitlines() if line.strip()]
        # tarfile's "r:*" lists why each compression failed; the plain tar's reason matters.
        reason = next((line for line in lines if line.startswith("method tar")), None)
        reason = reason or (lines[0] if lines else type(error).__name__)
        message = f"{path}: not a .nemo archive (truncated or not a tar: {reason})"
        raise NemoImportError(message) from None


def _read_members(path: Path, archive: tarfile.TarFile) -> NemoArchive:
    members = archive.getmembers()  # reads the whole index: a truncated file fails here
    files: dict[str, bytes] = {}
    weights = config = None
    for member in members:
        name = _member_name(path, member)
        if name is None:
            continue
        if name == CONFIG_MEMBER:
            config = _read_member(path, archive, member, MAX_CONFIG_BYTES)
        elif name == WEIGHTS_MEMBER:
            weights = member
        elif "/" not in name:
            files[name] = _read_member(path, archive, member, MAX_ARTIFACT_BYTES)
    if config is None:
        raise NemoImportError(f"{path}: no {CONFIG_MEMBER} in the archive")
    if weights is None:
        raise NemoImportError(f"{path}: no {WEIGHTS_MEMBER} in the archive")
    parsed = _load_config(path, config)
    state = _load_weights(path, _read_member(path, archive, weights, MAX_WEIGHTS_BYTES))
    return NemoArchive(path, parsed, state, files)
