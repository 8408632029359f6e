"""Few-shot evaluation of a frozen encoder (linear probes, zero-shot, retrieval).

    python -m primus_jax.main --config=configs/fewshot.py \
        --config.checkpoint=runs/hapt --config.data=uci_hapt/minilm --workdir=runs/hapt_eval

The settings and their defaults are ``primus_jax.evaluation.settings.settings()``; the keys,
methods, protocol and report are described in docs/evaluation.md.

Novel classes (HAPT's six postural transitions, never in the pretraining text; 34-37 training
windows per class, so k <= 20)::

    python -m primus_jax.main --config=configs/fewshot.py:transitions \
        --config.checkpoint=runs/primus_hapt --workdir=runs/novel
"""

from primus_jax.evaluation import settings

VARIANTS = {
    "": {},
    "transitions": {"data": "uci_hapt/transitions", "shots": (1, 2, 5, 10, 20)},
}


def get_config(variant: str | None = None):
    if (variant or "") not in VARIANTS:
        raise ValueError(f"configs/fewshot.py:{variant}: choose from {sorted(VARIANTS)}")
    c = settings.settings()
    c.mode = "fewshot"
    c.update(VARIANTS[variant or ""])
    return c
