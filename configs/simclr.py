"""SimCLR baseline: self-supervised loss only (L = L_SS), same encoder and augmentations.

    python -m primus_jax.main --config=configs/simclr.py --workdir=runs/simclr

Equivalent to the reference's ``--ssl_coeff 1`` without ``--nnclr``.
"""

from primus_jax.config import base_config
from primus_jax.objectives import variants


def get_config():
    c = base_config()
    variants.apply(c, "simclr")
    return c
