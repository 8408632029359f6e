"""Every random stream of a run, derived from the one config ``seed``.

JAX streams (threefry, identical on every backend) fold a fixed tag into ``key(seed)``:
``init`` (parameters), ``step`` (per-step key = ``fold_in(step_stream, step)``: augmentations
fold the op index into it, the NN tie-break folds ``NN_TIE_BREAK``), ``data`` (the per-epoch
visiting order, :mod:`primus_jax.data.order`). Host-side NumPy streams use
``default_rng([seed, tag])`` with the tags below. Keeping the tags here keeps them distinct.
"""

from __future__ import annotations

import jax

INIT, STEP, DATA = 0, 1, 2  # fold_in tags of key(seed)
NN_TIE_BREAK = 1 << 20  # fold_in tag of a step key (augmentation ops use 0, 1, ...)
# NumPy streams: default_rng([seed, tag]).
NP_SYNTHETIC = 0x5E6  # the synthetic paired source
NP_MULTIMODAL_MASK = 0x3F3  # which segments keep video/text (data.multimodal_fraction)


def root_keys(seed: int):
    """(init key, step key) of a run."""
    root = jax.random.key(seed)
    return jax.random.fold_in(root, INIT), jax.random.fold_in(root, STEP)


def data_key(seed: int):
    return jax.random.fold_in(jax.random.key(seed), DATA)


def nn_tie_break(step_key):
    """Key of the NN lookup's random tie-break at one step."""
    return jax.random.fold_in(step_key, NN_TIE_BREAK)
