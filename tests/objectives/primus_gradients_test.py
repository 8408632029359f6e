"""Gradients, not only Adam-updated parameters, are equal on 1 and 8 devices.

Adam divides each update by its running RMS, so a gradient off by a constant factor (a
doubled all-reduce, a mean taken over devices instead of rows) leaves the first updates nearly
unchanged; the gradients themselves must match. The 2-process case is in multihost_test.py.
"""

import numpy as np
import pytest
from support.multihost import (
    assert_same_gradients,
    gradient_inputs,
    gradients_on_mesh,
    tiny_config,
)

from primus_jax import sharding


@pytest.fixture(scope="module")
def probe():
    c = tiny_config()
    state, rows = gradient_inputs(c)
    out = {}
    for n in (1, 8):
        c.mesh.data = n
        out[n] = gradients_on_mesh(c, sharding.make_mesh(c), state, rows)
    return out


def test_losses_and_every_gradient_match_on_1_and_8_devices(probe):
    (loss1, terms1, g1), (loss8, terms8, g8) = probe[1], probe[8]
    # Every term is live (queue full, neighbours found), so every path carries gradient.
    assert all(
        terms1[k] > 0 for k in ("ss", "mm_text", "mm_video", "nn_text", "nn_video", "nn_imu")
    )
    np.testing.assert_allclose(loss8, loss1, rtol=1e-6)
    for k in terms1:
        np.testing.assert_allclose(terms8[k], terms1[k], rtol=1e-6, err_msg=k)
    assert_same_gradients(g8, g1, rtol=1e-6)


def test_the_check_sees_a_gradient_off_by_a_constant_factor(probe):
    g1 = probe[1][2]
    for scale in (2.0, 1.0 + 1e-5):
        with pytest.raises(AssertionError, match="relative difference"):
            assert_same_gradients({k: v * scale for k, v in g1.items()}, g1)
