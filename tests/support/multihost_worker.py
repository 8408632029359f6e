"""One process of a multi-process CPU run (launched by train_multiprocess_test.py).

    python tests/support/multihost_worker.py <process_id> <num_processes> <port> <workdir> <modes>

``modes``: a comma-separated list of "host" and "resident" input modes; each gets a short
training run in <workdir>/<mode>, in one process (one start-up and one ``jax.distributed``
session for all). Then the gradient probe of ``support.multihost``, written to
<workdir>/grads.npz by process 0.

Each process owns 4 fake CPU devices; gloo carries the cross-process collectives.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import xla_flags

os.environ["XLA_FLAGS"] = xla_flags(4)
os.environ["JAX_PLATFORMS"] = "cpu"

import jax
import numpy as np

jax.config.update("jax_cpu_collectives_implementation", "gloo")

from primus_jax import train  # noqa: E402
from support.multihost import tiny_config  # noqa: E402


def main():
    pid, nproc, port, workdir, modes = sys.argv[1:6]
    for mode in modes.split(","):
        c = tiny_config(mode)
        c.distributed.initialize = True  # once: later runs find it initialised
        c.distributed.coordinator_address = f"127.0.0.1:{port}"
        c.distributed.num_processes = int(nproc)
        c.distributed.process_id = int(pid)
        train.train_and_evaluate(c, os.path.join(workdir, mode))
    # Then the gradient probe on the 2 x 4 mesh; process 0 writes it.
    from primus_jax import distributed, sharding
    from support.multihost import gradient_inputs, gradients_on_mesh

    c = tiny_config()
    state, rows = gradient_inputs(c)
    loss, terms, grads = gradients_on_mesh(c, sharding.make_mesh(c), state, rows)
    if int(pid) == 0:
        np.savez(os.path.join(workdir, "grads.npz"), **grads)
        with open(os.path.join(workdir, "grads_loss.json"), "w") as f:
            json.dump({"loss": loss, "terms": terms}, f)
    distributed.wait_for_all_processes("grads_written")


if __name__ == "__main__":
    main()
