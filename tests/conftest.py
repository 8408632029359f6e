"""Test set-up: eight fake CPU devices, so sharding is exercised on any machine.

XLA_FLAGS must be set before jax initialises its backends, hence at import time here.
"""

import os
import sys

# The tests' shared helpers (tests/support) import as ``support``.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import xla_flags

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# No persistent compilation cache here: with jax 0.10.2 a multi-device CPU executable loaded
# from the cache deadlocks in its first all-gather (devices disagree on the collective op id).


import pytest


@pytest.fixture(scope="session")
def programs():
    """Compiled programs shared by the tests of one worker that run a config several times
    (straight, crashed and resumed runs)."""
    from primus_jax.programs import ProgramCache

    return ProgramCache(max_entries=16)
