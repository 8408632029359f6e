"""K-shot sampler and subject-wise split."""

import numpy as np
import pytest

from primus_jax.evaluation import sampling


def _labels():
    # Class sizes 10, 7, 3 and some unlabelled (-1) windows mixed in.
    y = np.array([0] * 10 + [1] * 7 + [2] * 3 + [-1] * 5)
    return np.random.default_rng(123).permutation(y)


def test_draws_exactly_k_per_class_from_train_only():
    y = _labels()
    s = sampling.sample_kshot(y, 3, seed=0, num_classes=3)
    assert s.indices.dtype == np.int64
    assert len(np.unique(s.indices)) == len(s.indices)  # without replacement
    assert np.all((s.indices >= 0) & (s.indices < len(y)))
    assert np.bincount(y[s.indices], minlength=3).tolist() == [3, 3, 3]
    assert s.shots_per_class.tolist() == [3, 3, 3]
    assert s.truncated_classes == ()
    assert np.all(y[s.indices] >= 0)  # unlabelled windows are never drawn


def test_short_classes_take_all_and_are_recorded():
    y = _labels()
    s = sampling.sample_kshot(y, 5, seed=1, num_classes=3)
    assert s.shots_per_class.tolist() == [5, 5, 3]
    assert s.truncated_classes == (2,)
    assert sorted(s.indices[y[s.indices] == 2]) == sorted(np.flatnonzero(y == 2))


def test_never_touches_held_out_indices():
    # The sampler only sees the train split; emulate a pool where the test windows were removed.
    y_all = np.repeat(np.arange(4), 25)
    test_idx = np.arange(0, 100, 4)
    train_idx = np.setdiff1d(np.arange(100), test_idx)
    for seed in range(5):
        s = sampling.sample_kshot(y_all[train_idx], 10, seed=seed)
        assert not set(train_idx[s.indices]) & set(test_idx)


def test_same_seed_same_indices_and_different_seeds_differ():
    y = _labels()
    a = sampling.sample_kshot(y, 2, seed=7, trial=1)
    b = sampling.sample_kshot(y, 2, seed=7, trial=1)
    np.testing.assert_array_equal(a.indices, b.indices)
    draws = {tuple(sampling.sample_kshot(y, 2, seed=s).indices) for s in range(6)}
    assert len(draws) > 1
    trials = {tuple(sampling.sample_kshot(y, 2, seed=7, trial=t).indices) for t in range(6)}
    assert len(trials) > 1


def test_sets_are_nested_across_k():
    y = _labels()
    perms = sampling.class_permutations(y, 3, seed=3, trial=0)
    small, large = sampling.take_kshot(perms, 2), sampling.take_kshot(perms, 6)
    assert set(small.indices) <= set(large.indices)


def test_rejects_bad_arguments():
    y = _labels()
    with pytest.raises(ValueError):
        sampling.sample_kshot(y, 0, seed=0)
    with pytest.raises(ValueError):
        sampling.sample_kshot(y, 1, seed=-1)
    with pytest.raises(ValueError):
        sampling.sample_kshot(y.astype(float), 1, seed=0)
    with pytest.raises(ValueError):
        sampling.sample_kshot(y, 1, seed=0, num_classes=2)  # label 2 out of range


def test_split_by_subject_is_disjoint_complete_and_deterministic():
    subjects = np.array([f"s{i % 9}" for i in range(90)])
    split = sampling.split_by_subject(subjects, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=4)
    assert sorted(np.concatenate(list(split.values()))) == list(range(90))
    subject_sets = [set(subjects[idx]) for idx in split.values()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not subject_sets[i] & subject_sets[j]
    assert [len(s) for s in subject_sets] == [5, 2, 2]  # round(0.6 * 9) = 5, round(1.8) = 2, rest
    again = sampling.split_by_subject(subjects, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=4)
    for name in split:
        np.testing.assert_array_equal(split[name], again[name])
    other = sampling.split_by_subject(subjects, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=5)
    assert any(not np.array_equal(split[n], other[n]) for n in split)


def test_split_by_subject_needs_enough_subjects():
    with pytest.raises(ValueError):
        sampling.split_by_subject(["a", "a", "a"], seed=0)
    with pytest.raises(ValueError):
        sampling.split_by_subject(["a", "b"], {"train": 0.5, "test": 0.6}, seed=0)
