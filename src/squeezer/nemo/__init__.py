"""Import NeMo's Squeezeformer and Conformer CTC checkpoints (`.nemo` files) without NeMo."""

from squeezer.nemo.archive import NemoImportError, read_nemo
from squeezer.nemo.importer import import_nemo, load_nemo

__all__ = ["NemoImportError", "import_nemo", "load_nemo", "read_nemo"]
