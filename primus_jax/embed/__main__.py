"""``python -m primus_jax.embed``: see ``primus_jax.embed.cli``."""

from absl import app

from primus_jax.embed import cli

if __name__ == "__main__":
    cli.define_flags()
    app.run(cli.main)
