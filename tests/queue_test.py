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


_SERIAL = iter(range(1, 1 << 30))


def _ids(n, recording=None):
    """(n, 2) uint32 identities, never seen before (or all of one ``recording``)."""
    seg = np.array([[7, next(_SERIAL)] for _ in range(n)], np.uint32)
    rec = seg.copy() if recording is None else np.tile(np.uint32([9, recording]), (n, 1))
    return jnp.asarray(seg), jnp.asarray(rec)


def _push(q, rng, has_video=True, has_text=True, tag=None):
    v, t, i = _unit(rng, B), _unit(rng, B), _unit(rng, B)
    seg, rec = _ids(B)
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
        segment_id=seg,
        recording_id=rec,
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


def _lookup(q, video, text=None, imu=None, has_video=True, has_text=True, mode="auto", **kw):
    n = len(video)
    seg, rec = _ids(n)  # queries are new segments unless the test says otherwise
    kw = {"segment_id": seg, "recording_id": rec, **kw}
    return queue_lib.nearest_neighbour(
        q,
        video=jnp.asarray(video),
        text=jnp.asarray(video if text is None else text),
        imu=jnp.asarray(video if imu is None else imu),
        has_video=jnp.full((n,), has_video),
        has_text=jnp.full((n,), has_text),
        mode=mode,
        **kw,
    )


def test_never_filled_slots_are_never_chosen():
    # All real entries are anti-aligned with the query, so the empty (zero) slots would win
    # with cosine 0 in the reference; here they are inadmissible.
    q = queue_lib.init_queue(K, D, D)
    e0 = np.zeros((B, D), np.float32)
    e0[:, 0] = 1.0
    seg, rec = _ids(B)
    q = queue_lib.enqueue(
        q,
        video=jnp.asarray(e0),
        text=jnp.asarray(e0),
        imu=jnp.asarray(e0),
        has_video=jnp.ones(B, bool),
        has_text=jnp.ones(B, bool),
        segment_id=seg,
        recording_id=rec,
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

    seg, rec = _ids(3)

    def f(queue, imu):
        res = queue_lib.nearest_neighbour(
            queue,
            video=query,
            text=query,
            imu=imu,
            has_video=jnp.zeros(3, bool),
            has_text=jnp.zeros(3, bool),
            segment_id=seg,
            recording_id=rec,
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


# -- self / recording exclusion ------------------------------------------------------------


def _queue_with(video, seg, rec):
    """A queue of exactly these rows (K = len(video)) and their identities."""
    k = len(video)
    q = queue_lib.init_queue(k, video.shape[1], video.shape[1])
    return queue_lib.enqueue(
        q,
        video=jnp.asarray(video),
        text=jnp.asarray(video),
        imu=jnp.asarray(video),
        has_video=jnp.ones(k, bool),
        has_text=jnp.ones(k, bool),
        segment_id=jnp.asarray(seg, jnp.uint32),
        recording_id=jnp.asarray(rec, jnp.uint32),
    )


def test_own_stale_entry_is_never_the_neighbour():
    # The row's own segment from an earlier epoch is in the queue with cosine 1: the
    # reference (exclude="none") takes it; "self" must take the best other slot.
    rng = np.random.default_rng(10)
    bank = _unit(rng, 8)
    seg = np.array([[1, i] for i in range(8)], np.uint32)
    rec = np.array([[2, i // 2] for i in range(8)], np.uint32)
    q = _queue_with(bank, seg, rec)
    query = bank[[3, 6]] * 2.0  # rows are segments 3 and 6, any norm
    ids = dict(segment_id=jnp.asarray(seg[[3, 6]]), recording_id=jnp.asarray(rec[[3, 6]]))
    sims = (bank[[3, 6]] @ bank.T).astype(np.float64)
    none = _lookup(q, query, exclude="none", **ids)
    np.testing.assert_array_equal(none["index"], [3, 6])  # the degenerate self-match
    want = np.argmax(np.where(np.eye(8, dtype=bool)[[3, 6]], -np.inf, sims), axis=1)
    own = _lookup(q, query, exclude="self", **ids)
    np.testing.assert_array_equal(own["index"], want)
    assert not np.any(np.asarray(own["index"]) == [3, 6])


def test_recording_exclusion_skips_every_window_of_the_recording():
    # Slot 1 is another window of the row's recording and the closest entry (overlapping
    # windows look alike): "self" takes it, "recording" does not.
    base = np.zeros((6, D), np.float32)
    base[:, 0] = 1.0
    base[1, 1], base[2, 1], base[3, 1], base[4, 2], base[5, 3] = 0.05, 0.3, 0.2, 0.6, 0.9
    bank = base / np.linalg.norm(base, axis=1, keepdims=True)
    seg = np.array([[1, i] for i in range(6)], np.uint32)
    rec = np.array([[2, 0], [2, 0], [2, 0], [2, 1], [2, 1], [2, 2]], np.uint32)
    q = _queue_with(bank, seg, rec)
    ids = dict(segment_id=jnp.asarray(seg[:1]), recording_id=jnp.asarray(rec[:1]))
    assert int(_lookup(q, bank[:1], exclude="none", **ids)["index"][0]) == 0
    assert int(_lookup(q, bank[:1], exclude="self", **ids)["index"][0]) == 1
    # recording 0 = slots 0, 1, 2: the best remaining slot is 3.
    assert int(_lookup(q, bank[:1], exclude="recording", **ids)["index"][0]) == 3


def test_a_row_whose_only_video_slots_are_excluded_falls_back_to_text():
    bank = _unit(np.random.default_rng(11), 4)
    seg = np.array([[1, i] for i in range(4)], np.uint32)
    q = queue_lib.enqueue(
        queue_lib.init_queue(4, D, D),
        video=jnp.asarray(bank),
        text=jnp.asarray(bank),
        imu=jnp.asarray(bank),
        has_video=jnp.asarray([True, False, False, False]),
        has_text=jnp.ones(4, bool),
        segment_id=jnp.asarray(seg),
        recording_id=jnp.asarray(seg),
    )
    res = _lookup(q, bank[:1], segment_id=jnp.asarray(seg[:1]), recording_id=jnp.asarray(seg[:1]))
    assert int(res["domain"][0]) == 1 and int(res["index"][0]) != 0 and bool(res["valid"][0])


def test_exclusion_needs_identities():
    q = queue_lib.init_queue(K, D, D)
    x = jnp.ones((2, D))
    with pytest.raises(ValueError, match="segment_id"):
        queue_lib.nearest_neighbour(
            q, video=x, text=x, imu=x, has_video=jnp.ones(2, bool), has_text=jnp.ones(2, bool)
        )


# -- random tie-break ------------------------------------------------------------------------


def test_tied_rows_spread_over_tied_slots():
    # 16 slots hold the same sentence (templated text), 16 others something else; 256 rows
    # ask with that sentence. Each row must take a tied slot, the rows must spread over all
    # of them roughly uniformly, and a new key must reshuffle the assignment.
    rng = np.random.default_rng(12)
    tied = np.flatnonzero(rng.permutation(32) < 16)
    bank = _unit(rng, 32)
    sentence = _unit(rng, 1)[0]
    bank[tied] = sentence
    q = _queue_with(bank, np.array([[1, i] for i in range(32)]), np.zeros((32, 2)))
    query = np.tile(sentence, (256, 1))
    look = lambda key: np.asarray(
        _lookup(q, query, key=None if key is None else jax.random.key(key))["index"]
    )
    a, b = look(0), look(1)
    assert set(a) <= set(tied) and set(b) <= set(tied)
    counts = np.bincount(a, minlength=32)[tied]
    assert counts.min() >= 4 and counts.max() <= 32  # expected 16 per slot
    chi2 = ((counts - 16.0) ** 2 / 16.0).sum()
    assert chi2 < 37.7  # chi-square, 15 dof, p = 0.001
    assert np.mean(a != b) > 0.8  # a new assignment every step
    np.testing.assert_array_equal(look(None), tied[0])  # no key: the lowest tied slot


def test_tie_break_never_reorders_distinct_similarities():
    # Slot 2 is better than the tied slots by a single float32 ulp of the similarity: it must
    # win for every row and every key (a noise offset would reorder it).
    bank = np.zeros((8, D), np.float32)
    bank[:, 0] = 1.0
    q = _queue_with(bank, np.array([[1, i] for i in range(8)]), np.zeros((8, 2)))
    sim = np.full((4, 8), np.float32(0.9))
    sim[:, 2] = np.nextafter(np.float32(0.9), np.float32(1.0))
    for key in range(5):
        idx = queue_lib._argmax_random_ties(jnp.asarray(sim), jax.random.key(key))
        np.testing.assert_array_equal(idx, 2)
    del q


def test_tie_priorities_are_nonzero_and_differ_between_rows():
    p = np.asarray(queue_lib.tie_priorities(jax.random.key(0), 64, 1024))
    assert p.dtype == np.uint32 and np.all(p % 2 == 1)
    # Rows order the slots differently: the top slot per row is spread out.
    assert len(set(np.argmax(p, axis=1).tolist())) > 50
