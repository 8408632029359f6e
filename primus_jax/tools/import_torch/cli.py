"""Command line of the PyTorch checkpoint import.

    python -m primus_jax.tools.import_torch --checkpoint primus.ckpt --workdir runs/primus_torch \\
        [--config configs/primus.py] [--config.loss.tau_init=0.1 ...] [--prefix imu_encoder.] \\
        [--temperatures auto|checkpoint|config]

Prints the import summary (JSON) and the commands to evaluate and fine-tune the result; the
widths read from the checkpoint appear as ``--config.model.*`` overrides when they differ from
the config's. Expected user errors exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence

from absl import app, flags
from ml_collections import config_flags

from primus_jax import cli_errors
from primus_jax.tools.import_torch.convert import CheckpointImportError
from primus_jax.tools.import_torch.keys import TEMPERATURE_MODES
from primus_jax.tools.import_torch.write import import_checkpoint


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the tool's flags on ``fv`` (the global flags when run as a program)."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file (default: config.base_config()).",
        lock_config=False,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "checkpoint", None, "PyTorch Lightning .ckpt or torch state_dict file.", flag_values=fv
    )
    flags.DEFINE_string(
        "workdir", None, "Output run directory (must hold no checkpoints).", flag_values=fv
    )
    flags.DEFINE_string(
        "prefix", None, "Encoder key prefix (default: found automatically).", flag_values=fv
    )
    flags.DEFINE_enum(
        "temperatures",
        "auto",
        list(TEMPERATURE_MODES),
        "auto: the checkpoint's τ where present, else config.loss.tau_init.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["checkpoint", "workdir"], flag_values=fv)


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> int:
    """Imports ``--checkpoint`` into ``--workdir``; returns the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    try:
        summary = import_checkpoint(
            fv.checkpoint, fv.workdir, fv.config, prefix=fv.prefix, temperatures=fv.temperatures
        )
    except (CheckpointImportError, pickle.UnpicklingError, FileExistsError, OSError) as e:
        return cli_errors.report(e)  # expected user errors: one line, no traceback
    print(json.dumps(summary, indent=2))
    cfg = "<config>"
    if fv.config is not None:
        cfg = config_flags.get_config_filename(fv["config"])
    overrides = "".join(f" --config.{k}={v}" for k, v in summary["config_overrides"].items())
    print(f"\nEvaluate:  primus_jax.load_encoder({fv.workdir!r})")
    print(f"Fine-tune: python -m primus_jax.main --config={cfg}{overrides} --workdir={fv.workdir}")
    return 0
