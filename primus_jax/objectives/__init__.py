"""Pretraining objectives as plug-ins, looked up once by name (``config.objective``).

An objective is a module here with:

* ``validate(config)``: raise ``ConfigError`` for its own keys (after the common checks);
* ``uses_queue(config) -> bool``: whether its step reads and fills the NN queue;
* ``init_params(config, init_key) -> dict``: trainable parameters beside ``encoder`` and the
  temperatures (e.g. MultitaskSSL's task heads), ``{}`` if none;
* ``make_train_step(config, model, tx, schedule)``: the pure ``(state, batch) ->
  (state, metrics)`` step the train loop jits.

The train loop, state and benchmarks call :func:`resolve` and never import an objective.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from primus_jax import config as config_lib

NAMES = ("primus", "multitask_ssl")


def get(name: str) -> ModuleType:
    """The objective module called ``name``."""
    if name not in NAMES:
        raise config_lib.ConfigError("objective", f"{name!r} is not one of {NAMES}")
    return importlib.import_module(f"primus_jax.objectives.{name}")


def resolve(config, *, num_devices: int, process_count: int = 1) -> ModuleType:
    """Validates ``config`` (common keys, then the objective's) and returns its objective.
    Nothing is compiled here, so a bad value fails in a second with its key named."""
    config_lib.validate(config, num_devices=num_devices, process_count=process_count)
    objective = get(config.get("objective", "primus"))
    objective.validate(config)
    return objective
