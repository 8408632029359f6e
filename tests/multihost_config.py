"""The tiny config shared by the multi-process test and its worker processes."""

from primus_jax.config import base_config


def tiny_config(mode="host"):
    """``mode``: "host" (the per-process host pipeline) or "resident" (data on the mesh)."""
    c = base_config()
    c.data.device_resident = mode == "resident"
    c.seed = 5
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64
    c.queue.size = 32
    c.model.hidden = 128
    c.model.ssl_dim = c.model.mm_dim = 64
    c.optim.lr = 1e-3
    c.train.num_steps = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    return c
