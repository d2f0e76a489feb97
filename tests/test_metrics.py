"""Metric functions against scikit-learn oracles and hand-checked cases."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, balanced_accuracy_score, top_k_accuracy_score

from zsl.eval import metrics as M


@pytest.mark.parametrize("seed", range(5))
def test_per_class_accuracy_is_balanced_accuracy(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 7, 300))
    assert M.per_class_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))


def test_per_class_accuracy_differs_from_plain_accuracy_on_imbalance():
    y = np.array([0] * 90 + [1] * 10)
    pred = np.zeros(100, int)
    assert M.per_class_accuracy(y, pred) == pytest.approx(0.5)
    assert np.mean(pred == y) == pytest.approx(0.9)


def test_harmonic_mean():
    assert M.harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert M.harmonic_mean(0.2, 0.8) == pytest.approx(2 * 0.16 / 1.0)
    assert M.harmonic_mean(0.0, 0.0) == 0.0


@pytest.mark.parametrize("k", [1, 2, 5])
def test_hit_at_k_matches_top_k_accuracy(k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(200, 8))
    cand = np.arange(8)
    y = rng.integers(0, 8, 200)
    assert M.hit_at_k(scores, y, cand, k) == pytest.approx(top_k_accuracy_score(y, scores, k=k, labels=cand))


def test_hit_at_k_with_non_contiguous_candidates():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.5]])
    cand = np.array([10, 20, 30])
    assert M.hit_at_k(scores, np.array([20, 30]), cand, 1) == 0.5
    assert M.hit_at_k(scores, np.array([20, 30]), cand, 2) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    rel = (rng.random(50) < 0.3).astype(int)
    rel[0] = 1
    score = -np.arange(50, dtype=float)  # ranked order
    assert M.average_precision(rel) == pytest.approx(average_precision_score(rel, score))


def test_calibrated_stacking_subtracts_gamma_from_seen_columns_only():
    scores = np.array([[1.0, 0.9], [0.2, 0.3]])
    cal = M.calibrated_stacking(scores, np.array([0, 1]), np.array([0]), 0.5)
    np.testing.assert_allclose(cal, [[0.5, 0.9], [-0.3, 0.3]])
    np.testing.assert_allclose(scores, [[1.0, 0.9], [0.2, 0.3]])  # input untouched


def _gzsl_case(seed=0):
    rng = np.random.default_rng(seed)
    cand = np.arange(6)
    seen, unseen = cand[:4], cand[4:]
    y = rng.integers(0, 6, 400)
    scores = rng.normal(size=(400, 6))
    scores[np.arange(400), y] += 1.5
    scores[:, :4] += 1.0  # biased towards seen classes, as real models are
    return scores, y, cand, seen, unseen


def test_gzsl_accuracies_and_gamma_selection_improve_h():
    scores, y, cand, seen, unseen = _gzsl_case()
    raw = M.gzsl_accuracies(scores, y, cand, seen, unseen, 0.0)
    gamma, h = M.select_gamma(scores, y, cand, seen, unseen)
    assert raw["S"] > raw["U"]
    assert h >= raw["H"]
    assert gamma > 0
    cal = M.gzsl_accuracies(scores, y, cand, seen, unseen, gamma)
    assert cal["H"] == pytest.approx(h)
    assert cal["H"] == pytest.approx(M.harmonic_mean(cal["U"], cal["S"]))


def test_ausuc_bounds_and_perfect_classifier():
    scores, y, cand, seen, unseen = _gzsl_case()
    a = M.ausuc(scores, y, cand, seen, unseen)
    assert 0.0 < a < 1.0
    perfect = np.eye(6)[y] * 10.0
    assert M.ausuc(perfect, y, cand, seen, unseen) == pytest.approx(1.0)
