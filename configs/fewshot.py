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
"""

import ml_collections


def get_config():
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
    return c
