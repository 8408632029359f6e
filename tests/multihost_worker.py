"""One process of a multi-process CPU run (launched by multihost_test.py).

    python tests/multihost_worker.py <process_id> <num_processes> <port> <workdir> <mode>

Each process owns 4 fake CPU devices; gloo carries the cross-process collectives.
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multihost_config import tiny_config  # noqa: E402

from primus_jax import train  # noqa: E402


def main():
    pid, nproc, port, workdir, mode = sys.argv[1:6]
    c = tiny_config(mode)
    c.distributed.initialize = True
    c.distributed.coordinator_address = f"127.0.0.1:{port}"
    c.distributed.num_processes = int(nproc)
    c.distributed.process_id = int(pid)
    train.train_and_evaluate(c, workdir)


if __name__ == "__main__":
    main()
