"""MultitaskSSL baseline (Saeed et al. 2019): transformation recognition, same encoder.

    python -m primus_jax.main --config=configs/multitask_ssl.py --workdir=runs/multitask_ssl

Eight binary tasks (noise, scaling, rotation, negation, time reversal, permutation, time-warp,
channel shuffle): per step, the B windows of the global batch and their eight transformed
copies (9B encoder rows) train one head per task to tell original from transformed
(primus_jax/objectives/multitask_ssl.py). Heads read the ``mmcl`` output, the embedding the
few-shot evaluation probes. No video/text is used, no NN queue (a token one), and
``config.loss`` is ignored. Optimiser, steps, batch and data are PRIMUS's defaults so the
comparison differs only in the objective; evaluate the checkpoint like any other.
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.objective = "multitask_ssl"
    # Not used by this objective; zeroed so the config reads as what runs.
    c.loss.alpha = c.loss.beta = c.loss.gamma = 0.0
    return c
