"""NN queue: FIFO order, wrap-around, fill masking, lookup domains, no gradient into it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from primus_jax import queue as queue_lib

K, D, B = 8, 4, 2


def _unit(rng, n, d=D):
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _push(q, rng, has_video=True, has_text=True, tag=None):
    v, t, i = _unit(rng, B), _unit(rng, B), _unit(rng, B)
    if tag is not None:  # recognisable rows: e_tag on the first axis
        v = np.zeros((B, D), np.float32)
        v[:, 0] = tag
        v[:, 1] = np.arange(B)
    q = queue_lib.enqueue(
        q,
        video=jnp.asarray(v),
        text=jnp.asarray(t),
        imu=jnp.asarray(i),
        has_video=jnp.full((B,), has_video),
        has_text=jnp.full((B,), has_text),
    )
    return q, v, t, i


def test_fifo_order_and_wraparound():
    rng = np.random.default_rng(0)
    q = queue_lib.init_queue(K, D, D)
    pushed = []
    for _ in range(K // B + 1):  # one batch more than fits: wraps onto slots 0..B-1
        q, v, _, _ = _push(q, rng)
        pushed.append(v)
    assert int(q.count) == K
    assert int(q.ptr) == B  # wrote 5 batches of 2 into 8 slots
    np.testing.assert_allclose(q.video[:B], pushed[-1], atol=1e-6)  # newest overwrote oldest
    for n in range(1, K // B):
        np.testing.assert_allclose(q.video[n * B : (n + 1) * B], pushed[n], atol=1e-6)


def test_fill_count_and_filled_mask():
    rng = np.random.default_rng(1)
    q = queue_lib.init_queue(K, D, D)
    assert not np.any(queue_lib.filled(q))
    q, *_ = _push(q, rng)
    np.testing.assert_array_equal(queue_lib.filled(q), np.arange(K) < B)
    for _ in range(10):
        q, *_ = _push(q, rng)
    assert int(q.count) == K and np.all(queue_lib.filled(q))


def _lookup(q, video, text=None, imu=None, has_video=True, has_text=True, mode="auto"):
    n = len(video)
    return queue_lib.nearest_neighbour(
        q,
        video=jnp.asarray(video),
        text=jnp.asarray(video if text is None else text),
        imu=jnp.asarray(video if imu is None else imu),
        has_video=jnp.full((n,), has_video),
        has_text=jnp.full((n,), has_text),
        mode=mode,
    )


def test_never_filled_slots_are_never_chosen():
    # All real entries are anti-aligned with the query, so the empty (zero) slots would win
    # with cosine 0 in the reference; here they are inadmissible.
    q = queue_lib.init_queue(K, D, D)
    e0 = np.zeros((B, D), np.float32)
    e0[:, 0] = 1.0
    q = queue_lib.enqueue(
        q,
        video=jnp.asarray(e0),
        text=jnp.asarray(e0),
        imu=jnp.asarray(e0),
        has_video=jnp.ones(B, bool),
        has_text=jnp.ones(B, bool),
    )
    res = _lookup(q, -e0[:1])
    assert int(res["index"][0]) < B
    assert bool(res["valid"][0])
    np.testing.assert_allclose(res["similarity"][0], -1.0, atol=1e-6)


def test_empty_queue_gives_no_valid_neighbour():
    q = queue_lib.init_queue(K, D, D)
    res = _lookup(q, _unit(np.random.default_rng(2), 3))
    assert not np.any(res["valid"])


def test_nearest_neighbour_matches_numpy_cosine_argmax():
    rng = np.random.default_rng(3)
    q = queue_lib.init_queue(K, D, D)
    for _ in range(K // B):
        q, *_ = _push(q, rng)
    query = rng.normal(size=(5, D)).astype(np.float32) * 3  # not unit norm
    res = _lookup(q, query)
    bank = np.asarray(q.video)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    want = np.argmax(qn @ (bank / np.linalg.norm(bank, axis=1, keepdims=True)).T, axis=1)
    np.testing.assert_array_equal(res["index"], want)
    np.testing.assert_array_equal(res["domain"], 0)


def test_fallback_to_text_then_imu():
    rng = np.random.default_rng(4)
    q = queue_lib.init_queue(K, D, D)
    for _ in range(K // B):
        q, *_ = _push(q, rng)
    query = _unit(rng, 3)
    v = _lookup(q, query)  # with video -> video queue
    t = _lookup(q, query, has_video=False)  # no video -> text queue
    i = _lookup(q, query, has_video=False, has_text=False)  # neither -> IMU queue
    np.testing.assert_array_equal(v["domain"], 0)
    np.testing.assert_array_equal(t["domain"], 1)
    np.testing.assert_array_equal(i["domain"], 2)
    for res, bank in ((v, q.video), (t, q.text), (i, q.imu)):
        np.testing.assert_array_equal(res["index"], np.argmax(query @ np.asarray(bank).T, 1))
    forced = _lookup(q, query, mode="imu")
    np.testing.assert_array_equal(forced["domain"], 2)


def test_slots_without_the_modality_are_excluded():
    rng = np.random.default_rng(5)
    q = queue_lib.init_queue(K, D, D)
    q, *_ = _push(q, rng, has_video=False)  # slots 0, 1: no video
    q, *_ = _push(q, rng, has_video=True)  # slots 2, 3
    # Plant the query itself in slot 0's video row: it would win if slot 0 were admissible.
    query = _unit(rng, 1)
    q = q.replace(video=q.video.at[0].set(query[0]))
    res = _lookup(q, query)
    assert int(res["index"][0]) in (2, 3)
    nb = queue_lib.gather(q, res["index"], res["valid"])
    assert bool(nb["has_video"][0])


def test_lookup_is_not_differentiable_into_queue_and_imu_key():
    rng = np.random.default_rng(6)
    q = queue_lib.init_queue(K, D, D)
    for _ in range(K // B):
        q, *_ = _push(q, rng)
    query = jnp.asarray(_unit(rng, 3))

    def f(queue, imu):
        res = queue_lib.nearest_neighbour(
            queue,
            video=query,
            text=query,
            imu=imu,
            has_video=jnp.zeros(3, bool),
            has_text=jnp.zeros(3, bool),
        )
        nb = queue_lib.gather(queue, res["index"], res["valid"])
        return jnp.sum(nb["imu"] * imu) + jnp.sum(nb["video"])

    g_queue, g_imu = jax.grad(f, argnums=(0, 1), allow_int=True)(q, query)
    # No gradient reaches any queue buffer, although the loss reads gathered entries.
    for name in ("video", "text", "imu"):
        assert np.all(np.asarray(getattr(g_queue, name)) == 0), name
    # imu enters only as the (stop-gradient) lookup key and as the explicit product term.
    nb_imu = queue_lib.gather(q, jnp.argmax(query @ q.imu.T, 1), jnp.ones(3, bool))["imu"]
    np.testing.assert_allclose(g_imu, nb_imu, atol=1e-6)
    # ...and enqueue stops them: a loss through enqueued rows has zero gradient.
    g = jax.grad(
        lambda v: jnp.sum(
            queue_lib.enqueue(
                q,
                video=v,
                text=v,
                imu=v,
                has_video=jnp.ones(B, bool),
                has_text=jnp.ones(B, bool),
            ).video
        )
    )(jnp.asarray(_unit(rng, B)))
    assert np.all(np.asarray(g) == 0)


def test_batch_must_divide_queue():
    q = queue_lib.init_queue(6, D, D)
    with pytest.raises(ValueError, match="multiple"):
        queue_lib.enqueue(
            q,
            video=jnp.ones((4, D)),
            text=jnp.ones((4, D)),
            imu=jnp.ones((4, D)),
            has_video=jnp.ones(4, bool),
            has_text=jnp.ones(4, bool),
        )
