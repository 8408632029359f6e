"""PRIMUS with the paper's defaults: L = L_SS + L_MM + L_NN (alpha = beta = gamma = 1).

    python -m primus_jax.main --config=configs/primus.py --workdir=runs/primus

Augmentation scaling + time reversal (paper §2), symmetric InfoNCE over the global batch with
two learnable temperatures (init 0.1), NN queue of 8192 with video -> text -> IMU lookup,
Adam 2e-4. The encoder is the reference's (GRU over conv channels) so the released PyTorch
checkpoint can be loaded. Data: the synthetic paired source until a TFDS dataset is chosen.
"""

from primus_jax.config import base_config


def get_config():
    return base_config()
