"""Reading a model's safetensors file safely: its header against the tensors a config needs.

Shared by the speech (`squeezer.model`) and sequence (`squeezer.sequences.model`) model
directories; torch and safetensors only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from squeezer.structured import short_repr

__all__ = ["MISFIT", "check_weights", "reason", "stored_tensors"]

# The model's dtype -> the safetensors dtypes read into it: only conversions that change no
# value (see `load_model_directory`).
READABLE = {
    torch.float32: ("F32", "F16", "BF16"),
    torch.int64: ("I64", "I32", "I16", "I8", "U8"),
}


def stored_tensors(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name -> (shape, safetensors dtype) of each tensor in `path`, from its header alone."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as file:
            slices = {name: file.get_slice(name) for name in file.keys()}  # noqa: SIM118
            return {name: (tuple(s.get_shape()), s.get_dtype()) for name, s in slices.items()}
    except (SafetensorError, OSError) as error:
        # a pickle (torch.save) renamed, a truncated or random file: its header does not parse
        raise ValueError(f"{path}: not a safetensors file ({reason(error)})") from None


def reason(error: Exception) -> str:
    """A safetensors error in one short line."""
    reason = " ".join(str(error).split()).removeprefix("Error while deserializing header: ")
    return reason if len(reason) <= 120 else reason[:117] + "..."


MISFIT = "weights do not fit the config"


def check_weights(
    path: Path,
    stored: dict[str, tuple[tuple[int, ...], str]],
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]],
) -> None:
    """The tensors in `path` are exactly those the config needs, of its shapes and dtypes."""
    missing = [name for name in expected if name not in stored]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{path}: {MISFIT}: tensor {missing[0]} is missing{more}")
    extra = [name for name in stored if name not in expected]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ValueError(f"{path}: {MISFIT}: tensor {short_repr(extra[0])} is extra{more}")
    for name, (shape, dtype) in expected.items():
        stored_shape, stored_dtype = stored[name]
        if stored_shape != shape:
            raise ValueError(
                f"{path}: {MISFIT}: tensor {name} has shape {stored_shape}, the config needs "
                f"{shape}"
            )
        if stored_dtype not in READABLE.get(dtype, ()):
            wanted = str(dtype).removeprefix("torch.")
            raise ValueError(f"{path}: tensor {name} is {stored_dtype}, the model needs {wanted}")
