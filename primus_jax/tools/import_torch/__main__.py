"""``python -m primus_jax.tools.import_torch``: see ``primus_jax.tools.import_torch.cli``."""

from absl import app

from primus_jax.tools.import_torch import cli

if __name__ == "__main__":
    cli.define_flags()
    app.run(cli.main)
