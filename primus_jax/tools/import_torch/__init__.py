"""Imports the official PRIMUS PyTorch checkpoint into a primus_jax checkpoint.

    python -m primus_jax.tools.import_torch --checkpoint primus.ckpt --workdir runs/primus_torch

``keys`` (the reference <-> primus_jax key table), ``load`` (reading the file without running
code from it), ``convert`` (state_dict -> parameters and temperatures), ``write`` (the step-0
checkpoint) and ``cli``. See ``docs/interop.md``.
"""

from primus_jax.tools.import_torch.convert import (
    CheckpointImportError,
    ConvertedEncoder,
    convert_state_dict,
    extract_state_dict,
    log_temperatures,
)
from primus_jax.tools.import_torch.keys import (
    KEY_TABLE,
    LAYOUTS,
    TEMPERATURE_KEYS,
    TEMPERATURE_MODES,
)
from primus_jax.tools.import_torch.load import (
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    load_torch_file,
)
from primus_jax.tools.import_torch.write import import_checkpoint, read_checkpoint

__all__ = [
    "KEY_TABLE",
    "LAYOUTS",
    "TEMPERATURE_KEYS",
    "TEMPERATURE_MODES",
    "CheckpointImportError",
    "ConvertedEncoder",
    "UnreadableCheckpointError",
    "UnsafeCheckpointError",
    "convert_state_dict",
    "extract_state_dict",
    "import_checkpoint",
    "load_torch_file",
    "log_temperatures",
    "read_checkpoint",
]
