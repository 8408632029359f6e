"""Loss ablations of the paper's Fig. 6, selected by a config argument.

    python -m primus_jax.main --config=configs/ablation.py:ss_mm --workdir=runs/ss_mm
    python -m primus_jax.main --config=configs/ablation.py:mm_nn --workdir=runs/mm_nn
    python -m primus_jax.main --config=configs/ablation.py:ss_nn --workdir=runs/ss_nn

Variants (weights alpha/beta/gamma of L_SS/L_MM/L_NN):

* ``ss_mm``  L_SS + L_MM (PRIMUS without nearest neighbours).
* ``mm_nn``  L_MM + L_NN with the multimodal NN terms only (the reference's ``ssl_coeff=0``
  with ``--nnclr``: no SS head is trained, so no IMU neighbour term).
* ``ss_nn``  L_SS + L_NN with the IMU NN term only, neighbours looked up by IMU similarity:
  no multimodal signal at all (the paper observes collapse to ~10-15% accuracy here).
* ``ss``, ``mm``  single losses (= configs/simclr.py, configs/imu2clip.py).
* ``nn``     L_NN alone (all three NN terms, video lookup).

The table is ``primus_jax.objectives.variants`` (shared with configs/hapt_baselines.py).

``sweep()`` lists them all for a launcher.
"""

from primus_jax.config import base_config
from primus_jax.objectives import variants

VARIANTS = tuple(variants.LOSS_VARIANTS)


def get_config(variant: str = "ss_mm"):
    if variant not in VARIANTS:
        raise ValueError(f"unknown ablation {variant!r}; choose one of {sorted(VARIANTS)}")
    c = base_config()
    variants.apply(c, variant)
    c.ablation = variant
    return c


def sweep():
    return [{"config": f"configs/ablation.py:{v}"} for v in VARIANTS]
