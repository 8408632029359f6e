"""Builds the TFDS dataset a training config reads, once, before a multi-process launch.

    python launch/prepare_data.py --config=configs/primus_hapt.py [--config.data.data_dir=...]

Takes the same flags as ``python -m primus_jax.main`` (``--workdir`` is accepted and ignored)
and calls ``primus_jax.data.prepare.prepare_dataset`` for ``config.data`` when the config reads
a TFDS dataset; a built dataset is left alone. Launchers run it on one host first, so that
processes sharing a data directory do not race to write the same dataset.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from primus_jax import cli_errors

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.")
flags.DEFINE_string("workdir", None, "Accepted for symmetry with primus_jax.main; unused.")
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from primus_jax.data import prepare

    d = _CONFIG.value.data
    if d.source != "tfds":
        logging.info("data.source=%r: nothing to build", d.source)
        return
    data_dir = d.data_dir or prepare.default_data_dir()
    if not d.prepare:
        logging.info("data.prepare=False: not building %s", d.name)
        return
    prepare.prepare_dataset(d.name, data_dir, d.manual_dir or None)
    logging.info("data: %s is ready in %s", d.name, data_dir)


if __name__ == "__main__":
    cli_errors.run(main)
