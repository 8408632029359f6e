"""SimCLR baseline: self-supervised loss only (L = L_SS), same encoder and augmentations.

    python -m primus_jax.main --config=configs/simclr.py --workdir=runs/simclr

Equivalent to the reference's ``--ssl_coeff 1`` without ``--nnclr``.
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.loss.alpha, c.loss.beta, c.loss.gamma = 1.0, 0.0, 0.0
    return c
