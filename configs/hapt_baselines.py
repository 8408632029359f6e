"""Baselines and ablations pretrained on UCI HAPT, exactly like configs/primus_hapt.py but
for the objective.

    python -m primus_jax.main --config=configs/hapt_baselines.py:simclr --workdir=runs/hapt_simclr

Variants:
  simclr         L_SS only (SimCLR).
  imu2clip       L_MM only (IMU <-> text; HAPT has no video).
  multitask_ssl  Saeed et al. (2019) transformation recognition (objectives/multitask_ssl.py).
  ss_mm, mm_nn, ss_nn   loss ablations of the paper's Fig. 6 (primus_jax.objectives.variants).
  mmfrac_0.1, mmfrac_0.5   PRIMUS with text kept for only 10% / 50% of the windows (Fig. 3).
  nn_text_lookup  PRIMUS with neighbours looked up by text, nothing excluded (the earlier
                 HAPT default): on templated text nn_text repeats mm_text and the neighbours
                 are same-sentence, i.e. same-class, windows (label supervision); kept to
                 show the difference.

Everything else (data, encoder, batch 64, Adam 2e-4, 1,500 steps, seed) is shared, so the
few-shot comparison isolates the objective. ``sweep()`` lists all variants.
"""

import os

from primus_jax.config import load_config_file
from primus_jax.objectives import variants

VARIANTS = (
    "simclr",
    "imu2clip",
    "multitask_ssl",
    "ss_mm",
    "mm_nn",
    "ss_nn",
    "mmfrac_0.1",
    "mmfrac_0.5",
    "nn_text_lookup",
)


def get_config(variant: str = "simclr"):
    c = load_config_file(os.path.join(os.path.dirname(__file__), "primus_hapt.py"))
    c.variant = variant
    if variant == "multitask_ssl":
        c.objective = "multitask_ssl"
    elif variant in ("simclr", "imu2clip", "ss_mm", "mm_nn", "ss_nn"):
        variants.apply(c, variant, modalities=("text",))  # HAPT has no video
    elif variant == "nn_text_lookup":
        c.queue.lookup, c.queue.exclude = "text", "none"
    elif variant.startswith("mmfrac_"):
        c.data.multimodal_fraction = float(variant.split("_", 1)[1])
    else:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    return c


def sweep():
    return [{"config": f"configs/hapt_baselines.py:{v}"} for v in VARIANTS]
