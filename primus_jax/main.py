"""Command-line entry point.

    python -m primus_jax.main --config=configs/primus.py --workdir=runs/primus \
        [--config.data.batch_size=128 ...]

Kept short on purpose: the logic lives in importable functions (``train.train_and_evaluate``)
that tests and notebooks call directly.
"""

from __future__ import annotations

import logging as logging_std

from absl import app, flags, logging
from ml_collections import config_flags

from primus_jax import cli_errors, host_memory

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file in configs/.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, metrics).")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(logging_std.Filter):
    """Drops INFO chatter of orbax (dozens of lines per checkpoint); keeps its warnings."""

    def filter(self, record):
        return record.levelno >= logging_std.WARNING or "/orbax/" not in record.pathname


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(_QuietLibraries())
    config = _CONFIG.value
    pretrain = config.get("mode", "pretrain") != "fewshot"
    if pretrain and config.train.get("keep_cpu_temporaries", True):
        host_memory.run_cpu_programs_inline()  # before jax starts (host_memory.py says why)
    import jax

    logging.info("JAX %s: %s", jax.__version__, jax.devices())
    if not pretrain:
        from primus_jax.evaluation import run as evaluation_run

        evaluation_run.evaluate(config, _WORKDIR.value)
    else:
        from primus_jax.evaluation import in_training

        # train.train_and_evaluate with the config.eval probes, then the run's summary.
        in_training.train(config, _WORKDIR.value)


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
