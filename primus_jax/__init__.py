"""PRIMUS (multimodal + self-supervised IMU encoder pretraining) in JAX/Flax.

``primus_jax.load_encoder(path)`` loads a checkpoint's encoder for inference (see
``primus_jax.inference``). It is resolved lazily, so ``import primus_jax`` stays cheap and
does not import JAX.
"""

from __future__ import annotations

__all__ = ["load_encoder"]


def __getattr__(name: str):
    # PEP 562 lazy attribute: the inference module (and JAX with it) loads on first use.
    if name == "load_encoder":
        from primus_jax.inference import load_encoder

        return load_encoder
    raise AttributeError(f"module 'primus_jax' has no attribute {name!r}")
