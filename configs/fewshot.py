"""Few-shot evaluation of a frozen encoder (linear probes, zero-shot, retrieval).

    python -m primus_jax.main --config=configs/fewshot.py \
        --config.checkpoint=runs/hapt --config.data=uci_hapt/minilm --workdir=runs/hapt_eval

``checkpoint``: a pretraining workdir (or its checkpoints/<step>); empty = a randomly
initialised encoder (the random-init baseline). ``data``: a TFDS segment dataset
(``uci_hapt/minilm``, ``realworld/raw``, ...) or ``npz:<path>`` with ``X`` (N, 250, 6) float32 at
50 Hz in SI units, ``y`` labels, and ``split`` or ``subject`` (see primus_jax/data/labelled.py).
Results: ``<workdir>/fewshot.json`` (schema primus_jax.fewshot/1, see the README),
``fewshot.md`` and ``fewshot_<dataset>.png``.

On HAPT (1,342 test windows) the default sweep takes about a minute on a 2-core CPU, plus
~20 s per Standard Training fit when that method is enabled.

Novel classes (HAPT's six postural transitions, never in the pretraining text; one window per
transition, 34-37 training windows per class, so k <= 20)::

    python -m primus_jax.main --config=configs/fewshot.py:transitions \
        --config.checkpoint=runs/primus_hapt --workdir=runs/novel

(the same as ``--config.data=uci_hapt/transitions --config.shots=1,2,5,10,20``).

~15-25 s on the 2-core CPU (108 test windows, chance 16.7%). Measured logreg accuracy at
k = 1 / 20: random init 32.6 / 49.6%; PRIMUS on HAPT after 30 steps 33.1 / 46.7%, after 300
steps 44.4 / 59.4% (zero-shot from the builder's prompts, embedded with MiniLM: 20.4%
random, 32.4% at 30 steps, 36.1% at 300).
"""

import ml_collections

VARIANTS = {
    "": {},
    "transitions": {"data": "uci_hapt/transitions", "shots": "1,2,5,10,20"},
}


def get_config(variant: str | None = None):
    if (variant or "") not in VARIANTS:
        raise ValueError(f"configs/fewshot.py:{variant}: choose from {sorted(VARIANTS)}")
    c = ml_collections.ConfigDict()
    c.mode = "fewshot"
    c.seed = 0
    c.checkpoint = ""  # "" = random init (the random-init linear-probe baseline)
    c.data = "uci_hapt/minilm"
    c.data_dir = ""  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.prepare = True  # build the TFDS dataset on first use
    c.train_split = "train"
    c.test_split = "test"
    c.embedding = "mmcl"  # the paper keeps the multimodal head downstream; or "emb", "ssl"
    c.shots = "1,2,5,10,20,50,100,500"
    c.trials = 5
    c.methods = "logreg,ridge,logreg_zs"  # + "zeroshot" automatically, + "standard_training"
    c.zeroshot = True
    c.retrieval = True
    c.text_encoder = ""  # "" = the dataset's (metadata text_encoder); "none" disables
    c.text_encoder_dir = ""  # local weights for clip_text
    c.batch_size = 512
    c.run_name = ""
    c.standard_training_shots = ""  # "" = same as shots
    c.standard_training_steps = 0  # 0 = the baseline's default budget
    # Used only when checkpoint == "": the random-init encoder's shape.
    c.model = ml_collections.ConfigDict(dict(mm_dim=384))
    c.update(VARIANTS[variant or ""])
    return c
