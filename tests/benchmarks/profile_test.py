"""The step profile places each thunk's time in the part of the code that made it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from primus_jax import losses
from primus_jax.benchmarks import profile


def test_self_times_subtract_enclosed_events():
    # A loop (0..100) runs two GEMMs (10..40, 50..90) on its thread; a copy follows it.
    events = [(0, 100, "while"), (10, 30, "gemm"), (50, 40, "gemm"), (100, 5, "copy")]
    assert dict(profile.self_times(events)) == {"while": 30, "gemm": 70, "copy": 5}


def test_part_of_innermost_known_file():
    assert profile.part_of("/x/primus_jax/models/gru.py") == "gru"
    assert profile.part_of("/x/primus_jax/models/encoder.py") == "encoder"
    assert profile.part_of("/x/site-packages/optax/_src/transform.py") == "optimizer"
    assert profile.part_of("/x/primus_jax/queue.py") == "nn_lookup"
    assert profile.part_of("/x/primus_jax/objectives/primus.py") is None


def test_shares_of_a_compiled_program():
    """A program whose work is an InfoNCE over 512 rows and an Adam update of a small
    vector: the losses must take most of the thunk time, and every part is a share of 1."""
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(512, 256)).astype(np.float32))
    k = jnp.asarray(rng.normal(size=(512, 256)).astype(np.float32))
    tx = optax.adam(1e-3)
    w = jnp.ones((64,))
    opt = tx.init(w)

    def f(q, k, w, opt):
        loss, g = jax.value_and_grad(lambda q: losses.symmetric_info_nce(q, k, 0.1))(q)
        upd, opt = tx.update(jnp.full_like(w, loss), opt, w)
        return g, optax.apply_updates(w, upd), opt

    compiled = jax.jit(f).lower(q, k, w, opt).compile()
    parts = profile.instruction_parts(compiled.as_text())
    assert {"losses", "optimizer"} <= set(parts.values())
    out = profile.shares(compiled, lambda: jax.block_until_ready(compiled(q, k, w, opt)), 3)
    assert abs(sum(out["shares"].values()) - 1.0) < 1e-3
    assert out["shares"]["losses"] > 0.5, out
    assert out["thunk_ms_per_step"] > 0 and out["top_thunks"][0]["part"] == "losses"
