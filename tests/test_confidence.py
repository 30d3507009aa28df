"""Confidence strategies."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skcfe._confidence import (
    _FLOOR,
    agreement,
    apply_confidence,
    calibration_weights,
    certainty,
    fit_confidence,
    label_targets,
)


def test_certainty_is_distance_from_uninformative_probability():
    R = np.array([[0.5, 0.0, 1.0, 0.75]])
    np.testing.assert_allclose(certainty(R, 2), [[_FLOOR, 1.0, 1.0, _FLOOR + (1 - _FLOOR) * 0.5]])
    # Three classes: 1/3 is uninformative, a one-hot probability is certain.
    np.testing.assert_allclose(certainty(np.array([[1 / 3, 1.0, 0.0]]), 3), [[_FLOOR, 1.0, _FLOOR + (1 - _FLOOR) * 0.5]])


def test_agreement_is_closeness_to_the_estimators_mean_per_class():
    R = np.array([[0.2, 0.2, 0.8], [0.5, 0.5, 0.5]])
    C = agreement(R, 2)
    np.testing.assert_allclose(C[1], 1.0)
    assert C[0, 2] < C[0, 0] == C[0, 1]
    # Multiclass: columns j*K+k are compared with the mean of class k only.
    R3 = np.array([[0.6, 0.3, 0.1, 0.6, 0.3, 0.1]])
    np.testing.assert_allclose(agreement(R3, 3), 1.0)


def test_label_targets_follow_the_column_layout():
    y = np.array([0, 2, 1])
    T = label_targets(y, 3, 2)
    np.testing.assert_array_equal(T[1], [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(label_targets(np.array([1, 0]), 2, 3), [[1, 1, 1], [0, 0, 0]])


def test_calibration_weights_are_one_minus_brier():
    R = np.array([[0.9, 0.5], [0.1, 0.5]])
    T = np.array([[1.0, 1.0], [0.0, 0.0]])
    w = calibration_weights(R, T, np.ones(2))
    np.testing.assert_allclose(w, _FLOOR + (1 - _FLOOR) * (1 - np.array([0.01, 0.25])))
    C, state = fit_confidence("calibration", R, T, np.ones(2, bool), np.ones(2), n_classes=2, label_aware_alpha=1)
    np.testing.assert_allclose(apply_confidence(state, np.zeros((5, 2))), np.tile(w, (5, 1)))


def test_label_aware_boosts_only_labeled_agreeing_entries():
    R = np.array([[0.9, 0.2], [0.9, 0.2]])
    T = np.array([[1.0, 1.0], [0.0, 0.0]])
    labeled = np.array([True, False])
    C, state = fit_confidence("label_aware", R, T, labeled, np.ones(2), n_classes=2, label_aware_alpha=2.0)
    base = certainty(R, 2)
    np.testing.assert_allclose(C[0], [3 * base[0, 0], base[0, 1]])
    np.testing.assert_allclose(C[1], base[1])  # unlabeled: no label, no boost
    np.testing.assert_allclose(apply_confidence(state, R), base)  # prediction is label-free


def test_calibration_needs_labeled_rows():
    with pytest.raises(ValueError, match="needs labeled rows"):
        fit_confidence("calibration", np.ones((2, 1)), np.ones((2, 1)), np.zeros(2, bool), np.ones(2), n_classes=2, label_aware_alpha=1)


@settings(max_examples=50, deadline=None)
@given(
    R=arrays(np.float64, (6, 6), elements=st.floats(0, 1)),
    strategy=st.sampled_from(["uniform", "certainty", "label_aware", "agreement", "calibration"]),
    n_classes=st.sampled_from([2, 3]),
)
def test_any_probabilities_give_bounded_positive_confidence(R, strategy, n_classes):
    y = np.arange(6) % n_classes
    T = label_targets(y, n_classes, 6 if n_classes == 2 else 2)
    C, state = fit_confidence(strategy, R, T, np.ones(6, bool), np.ones(6), n_classes=n_classes, label_aware_alpha=1.0)
    free = apply_confidence(state, R)
    assert np.all(C >= _FLOOR - 1e-12) and np.all(C <= 2.0 + 1e-12)
    assert np.all(free >= _FLOOR - 1e-12) and np.all(free <= 1.0 + 1e-12)
