"""IMU2CLIP baseline: multimodal loss only (L = L_MM = IMU<->video + IMU<->text).

    python -m primus_jax.main --config=configs/imu2clip.py --workdir=runs/imu2clip

Equivalent to the reference's ``--ssl_coeff 0`` without ``--nnclr``.
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.loss.alpha, c.loss.beta, c.loss.gamma = 0.0, 1.0, 0.0
    return c
