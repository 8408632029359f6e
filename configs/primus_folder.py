"""PRIMUS pretraining on your own recordings (the imu_folder builder; docs/own_recordings.md).

    python -m primus_jax.main --config=configs/primus_folder.py \
        --config.data.manual_dir=my_recordings --workdir=runs/my_recordings

Data: ``imu_folder/minilm``, the folder's training subjects as 5 s, 50 Hz windows, each paired
with the narration inside it (if any) embedded by all-MiniLM-L6-v2 (384-d). On first use the
dataset is built from ``data.manual_dir`` (the folder with its manifest.yaml) into
$TFDS_DATA_DIR or ~/tensorflow_datasets, after embedding the narrations if
``<folder>/embeddings/minilm`` does not exist yet. No video by default: L_MM is IMU<->text and
the NN lookup uses the IMU key; with per-window video embeddings in the manifest add
``--config.loss.mm_terms=text,video``. Windows without a narration take part in the SSL and NN
terms only.

All three losses at the paper's weights, paper augmentations, Adam 2e-4, global batch 32
(lower it if the training split has fewer windows), queue 256, 500 steps.

Healthy numbers, on the generated messy folder (``python -m
tfds_builders.imu_folder.dummy_data_generation my_recordings``: 30 training windows, 20 with a
narration) with --config.data.batch_size=16 --config.queue.size=32
--config.train.num_steps=100 (seed 0, 2-core CPU, ~33 s): total loss 11.0 at step 1 (L_NN 0
while the queue is empty), 14.9 at step 10 (L_SS 4.0, L_MM 4.2, L_NN 6.7), then 8.2-9.5 from
step 60 on (L_SS ~1.3, L_MM ~2.4, L_NN 4.5-5.8), nn_self and nn_same_recording 0. The
configs/fewshot.py run on it: logistic probe 81.5 / 96.3 / 100 % at k = 1 / 2 / 5, zero-shot
100 % (two well-separated synthetic activities, 9 test windows).
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.data.source = "tfds"
    c.data.name = "imu_folder/minilm"
    c.data.split = "train"
    c.data.manual_dir = ""  # your folder: --config.data.manual_dir=<folder with manifest.yaml>
    c.data.batch_size = 32
    c.model.mm_dim = 384
    c.loss.mm_terms = ("text",)
    c.loss.nn_terms = ("text", "imu")
    # Sliding windows overlap by half: the neighbour must come from another recording.
    c.queue.lookup = "imu"
    c.queue.exclude = "recording"
    c.queue.size = 256
    c.train.num_steps = 500
    c.train.log_every = 25
    c.train.checkpoint_every = 250
    return c
