"""Named settings of the PRIMUS loss: the paper's ablations (Fig. 6) and the baselines that
are a setting of it (SimCLR = SS only, IMU2CLIP = MM only). One table for every config."""

from __future__ import annotations

# name: (alpha, beta, gamma, nn_terms or None = keep the config's, lookup or None = keep)
LOSS_VARIANTS = {
    "ss_mm": (1.0, 1.0, 0.0, None, None),  # PRIMUS without nearest neighbours
    # The reference's ssl_coeff=0 with --nnclr: no SS head is trained, so no IMU NN term.
    "mm_nn": (0.0, 1.0, 1.0, ("text", "video"), None),
    # No multimodal signal at all; neighbours by IMU similarity (the paper: collapse).
    "ss_nn": (1.0, 0.0, 1.0, ("imu",), "imu"),
    "ss": (1.0, 0.0, 0.0, None, None),
    "mm": (0.0, 1.0, 0.0, None, None),
    "nn": (0.0, 0.0, 1.0, None, None),
}
ALIASES = {"simclr": "ss", "imu2clip": "mm"}


def apply(config, name: str, modalities=("text", "video")) -> None:
    """Sets ``config.loss`` (and the NN lookup) to variant ``name``; NN terms of modalities
    the data does not have are dropped (HAPT: text only)."""
    key = ALIASES.get(name, name)
    if key not in LOSS_VARIANTS:
        raise ValueError(
            f"unknown loss variant {name!r}; choose one of {sorted([*LOSS_VARIANTS, *ALIASES])}"
        )
    alpha, beta, gamma, nn_terms, lookup = LOSS_VARIANTS[key]
    config.loss.alpha, config.loss.beta, config.loss.gamma = alpha, beta, gamma
    if nn_terms is not None:
        config.loss.nn_terms = tuple(t for t in nn_terms if t == "imu" or t in modalities)
    if lookup is not None:
        config.queue.lookup = lookup
