"""``python -m primus_jax.embed``: see ``primus_jax.embed.cli``."""

from primus_jax import cli_errors
from primus_jax.embed import cli

if __name__ == "__main__":
    cli.define_flags()
    cli_errors.run(cli.main)
