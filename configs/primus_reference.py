"""The official PyTorch code's *effective* behaviour, where it is deliberate.

    python -m primus_jax.main --config=configs/primus_reference.py --workdir=runs/reference

* augmentation: scaling with one factor per time step, then time-segment permutation (what
  runs, since ``--transform_list`` is ignored; docs/differences.md);
* loss weights 0.5 each (``--ssl_coeff 0.5`` with ``--multihead --nnclr``: half the paper's
  alpha = beta = gamma = 1);
* batch 16 (per GPU in the reference; here global, and our negatives span it);
* GRU over the conv channels (as in our default too);
* Adam 2e-4, no schedule, no weight decay, no clipping, float32 (as in our default too).

Not reproduced, because they are defects (see the README's table): per-GPU negatives, the
unclamped raw temperature, zero queue slots winning the NN lookup, validation batches
enqueued, the 200 Hz placeholder, the capital-"C" text cleaning.
"""

from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.augment.ops = ("reference",)
    c.loss.alpha = c.loss.beta = c.loss.gamma = 0.5
    c.data.batch_size = 16
    return c
