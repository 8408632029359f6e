"""Tiny CPU run of the full PRIMUS objective (all three losses, NN queue), well under a minute.

    python -m primus_jax.main --config=configs/smoke.py --workdir=/tmp/primus_smoke

The real encoder (1,376,204 parameters) on 512 synthetic paired segments: global batch 16,
queue 64 (fills in 4 steps), 60 steps. A healthy run logs a total loss falling from ~32 (all
terms at chance) to about 24 (the multimodal terms from 11 to about 8; seed 0 on this CPU:
24.1519), queue_fill reaching 1.0, and leaves a checkpoint and TensorBoard events.
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 512
    c.queue.size = 64
    c.optim.lr = 1e-3
    c.train.num_steps = 60
    c.train.log_every = 10
    c.train.checkpoint_every = 30
    c.train.keep_checkpoints = 2
    return c
