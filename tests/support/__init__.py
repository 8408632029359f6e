"""Helpers shared by the tests: independent references, realistic IMU windows, the PyTorch
reference encoder, the multi-process set-up. ``REPO`` is the repository root."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Compile fast: the tests run a handful of steps each, so compiling dominates. LLVM at
# optimisation level 0 compiles ~35% faster (XLA's HLO optimisations, fusion and numerics are
# the same); skipping LLVM's expensive passes takes ~10% more off.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def xla_flags(devices: int = 1) -> str:
    """``XLA_FLAGS`` for a test process or a subprocess a test starts: ``devices`` fake CPU
    devices (one, as a user's CPU run has, unless a test needs a mesh), compiled fast."""
    fake = f"--xla_force_host_platform_device_count={devices} " if devices > 1 else ""
    return fake + FAST_COMPILE_FLAGS
