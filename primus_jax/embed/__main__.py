"""``python -m primus_jax.embed``: see ``primus_jax.embed.cli``."""

import sys

from primus_jax.embed.cli import main

if __name__ == "__main__":
    sys.exit(main())
