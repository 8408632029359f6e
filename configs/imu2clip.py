"""IMU2CLIP baseline: multimodal loss only (L = L_MM = IMU<->video + IMU<->text).

    python -m primus_jax.main --config=configs/imu2clip.py --workdir=runs/imu2clip

Equivalent to the reference's ``--ssl_coeff 0`` without ``--nnclr``.
"""

from primus_jax.config import base_config
from primus_jax.objectives import variants


def get_config():
    c = base_config()
    variants.apply(c, "imu2clip")
    return c
