"""``python -m primus_jax.tools.import_torch``: see ``primus_jax.tools.import_torch.cli``."""

from primus_jax import cli_errors
from primus_jax.tools.import_torch import cli

if __name__ == "__main__":
    cli.define_flags()
    cli_errors.run(cli.main)
