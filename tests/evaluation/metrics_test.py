"""Classification metrics, summary statistics and retrieval metrics against hand computations."""

import math

import numpy as np
import pytest

from primus_jax.evaluation import metrics, retrieval

# Hand-worked example, C = 4; class 3 occurs in neither truth nor prediction.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def test_confusion_matrix_by_hand():
    expected = [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, Y_PRED, 4), expected)


def test_accuracy_f1_balanced_by_hand():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    # F1 = 2TP / (2TP + FP + FN): class 0: 4/5, class 1: 2/4, class 2: 2/3, class 3: 0/0.
    f1 = metrics.per_class_f1(metrics.confusion_matrix(Y_TRUE, Y_PRED, 4))
    np.testing.assert_allclose(f1[:3], [0.8, 0.5, 2 / 3])
    assert math.isnan(f1[3])
    assert metrics.macro_f1(Y_TRUE, Y_PRED, 4) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics.macro_f1(Y_TRUE, Y_PRED, 4, absent="zero") == pytest.approx(
        (0.8 + 0.5 + 2 / 3) / 4
    )
    # Recalls 2/3, 1/2, 1/1 over the classes present in the truth.
    assert metrics.balanced_accuracy(Y_TRUE, Y_PRED, 4) == pytest.approx((2 / 3 + 0.5 + 1) / 3)


def test_class_only_predicted_counts_as_zero_f1():
    # Class 1 never occurs in the truth but is predicted once: precision 0, so F1 0, included.
    assert metrics.macro_f1([0, 0], [0, 1], 2) == pytest.approx((2 / 3 + 0.0) / 2)


def test_perfect_and_rejections():
    y = np.array([2, 0, 1, 1])
    assert metrics.classification_metrics(y, y, 3) == {
        "accuracy": 1.0,
        "macro_f1": 1.0,
        "balanced_accuracy": 1.0,
    }
    with pytest.raises(ValueError):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError):
        metrics.macro_f1([0], [0], 1, absent="ignore")


def test_standard_error_and_summary():
    assert metrics.standard_error([0.5, 0.7, 0.9]) == pytest.approx(0.2 / math.sqrt(3))
    assert metrics.standard_error([0.4]) is None
    assert metrics.summarize([0.5, 0.7, 0.9]) == {
        "mean": pytest.approx(0.7),
        "stderr": pytest.approx(0.2 / math.sqrt(3)),
        "trials": [0.5, 0.7, 0.9],
    }


SIM = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.2], [0.3, 0.95, 0.4]])


def test_pair_ranks_on_hand_built_similarity():
    ranks = retrieval.ranks_from_similarity(SIM)
    np.testing.assert_array_equal(ranks, [1, 2, 2])
    m = retrieval.metrics_from_ranks(ranks, ks=(1, 2))
    assert m == {
        "recall@1": pytest.approx(1 / 3),
        "recall@2": 1.0,
        "mrr": pytest.approx((1 + 0.5 + 0.5) / 3),
        "median_rank": 2.0,
    }


def test_group_matching_and_ties():
    groups = np.array([0, 1, 1])  # items 1 and 2 share a text
    correct = groups[:, None] == groups[None, :]
    np.testing.assert_array_equal(retrieval.ranks_from_similarity(SIM, correct), [1, 2, 1])
    tie = np.array([[0.5, 0.5], [0.2, 0.9]])
    np.testing.assert_array_equal(retrieval.ranks_from_similarity(tie), [2, 1])
    np.testing.assert_array_equal(retrieval.ranks_from_similarity(tie, ties="optimistic"), [1, 1])
    with pytest.raises(ValueError):
        retrieval.ranks_from_similarity(SIM, np.zeros((3, 3), bool))


def test_retrieval_from_embeddings_with_duplicate_texts():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(6, 8))
    text[4] = text[1]  # a duplicated narration
    imu = text + 0.01 * rng.normal(size=text.shape)
    pair = retrieval.retrieval_metrics(imu, text, chunk=4)
    # IMU -> text: IMU 1 and IMU 4 each face two identical texts, an exact tie that pessimistic
    # tie-breaking counts against both; optimistic tie-breaking lets both through.
    assert pair["imu_to_text"]["recall@1"] == pytest.approx(4 / 6)
    optimistic = retrieval.retrieval_metrics(imu, text, ties="optimistic")
    assert optimistic["imu_to_text"]["recall@1"] == 1.0
    # Text -> IMU: the twin texts score the two IMU windows identically, and exactly one of
    # those IMU windows is closer, so exactly one of the twins misses rank 1.
    assert pair["text_to_imu"]["recall@1"] == pytest.approx(5 / 6)
    groups = ["a", "b", "c", "d", "b", "e"]
    grouped = retrieval.retrieval_metrics(imu, text, match="group", groups=groups, chunk=4)
    assert grouped["imu_to_text"]["recall@1"] == 1.0
    assert grouped["text_to_imu"]["recall@1"] == 1.0
    assert grouped["imu_to_text"]["n"] == 6
    same = retrieval.retrieval_metrics(imu, text, chunk=1024)
    assert same == pair  # chunking does not change results


def test_retrieval_of_constant_encoder_is_worst_case():
    text = np.eye(5)
    imu = np.ones((5, 5))
    m = retrieval.retrieval_metrics(imu, text)["imu_to_text"]
    assert m["recall@1"] == 0.0 and m["median_rank"] == 5.0
