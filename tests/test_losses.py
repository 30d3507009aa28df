"""Tests of the focal loss and its exact gradient (skcfe._losses)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import expit, softmax
from sklearn.metrics import log_loss

from skcfe._losses import _focal_terms, focal_loss, focal_loss_gradient

GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]


def _binary_problem(seed, n=15):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, n), rng.normal(0, 2, n), rng.uniform(0.1, 3.0, n)


def _multiclass_problem(seed, n=12, n_classes=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    return y, rng.normal(0, 2, (n, n_classes)), rng.uniform(0.1, 3.0, n)


def _central_differences(y, raw, gamma, sample_weight, step=1e-3):
    """Five-point central differences: O(step**4) truncation, round-off near 1e-13."""

    def loss_at(index, shift):
        shifted = raw.copy()
        shifted[index] += shift
        return focal_loss(y, shifted, gamma=gamma, sample_weight=sample_weight)

    grad = np.empty_like(raw)
    for index in np.ndindex(raw.shape):
        grad[index] = (
            8 * (loss_at(index, step) - loss_at(index, -step))
            - (loss_at(index, 2 * step) - loss_at(index, -2 * step))
        ) / (12 * step)
    return grad


# Values ------------------------------------------------------------------------------------


def test_gamma_zero_is_log_loss_multiclass():
    y, raw, sw = _multiclass_problem(0)
    proba = softmax(raw, axis=1)
    expected = log_loss(y, proba, labels=np.arange(4))
    assert focal_loss(y, raw, gamma=0.0) == pytest.approx(expected, rel=1e-12)
    expected = log_loss(y, proba, labels=np.arange(4), sample_weight=sw)
    assert focal_loss(y, raw, gamma=0.0, sample_weight=sw) == pytest.approx(expected, rel=1e-12)


def test_gamma_zero_is_log_loss_binary():
    y, raw, sw = _binary_problem(1)
    expected = log_loss(y, expit(raw), sample_weight=sw)
    assert focal_loss(y, raw, gamma=0.0, sample_weight=sw) == pytest.approx(expected, rel=1e-12)


def test_hand_values():
    # sigmoid(0) = 0.5 for either label: FL = 0.5**gamma * log 2.
    assert focal_loss([1, 0], [0.0, 0.0], gamma=2.0) == pytest.approx(np.log(2) / 4, rel=1e-14)
    # p = (0.5, 0.3, 0.2), true class 1: -(0.7)**2 * log(0.3).
    raw = np.log([[0.5, 0.3, 0.2]])
    assert focal_loss([1], raw, gamma=2.0) == pytest.approx(-0.49 * np.log(0.3), rel=1e-12)
    assert focal_loss([0], raw, gamma=1.0) == pytest.approx(-0.5 * np.log(0.5), rel=1e-12)
    # Weighted mean of 0.25 log 2 (weight 3) and -(0.7)**2 log 0.3 (weight 1).
    raw = np.log([[0.5, 0.5, 1e-300], [0.5, 0.3, 0.2]])
    expected = (3 * np.log(2) / 4 - 0.49 * np.log(0.3)) / 4
    assert focal_loss([0, 1], raw, gamma=2.0, sample_weight=[3, 1]) == pytest.approx(expected)


def test_hand_gradient():
    # y = 1, z = 0, gamma = 2: G = 2 * 0.5 * 0.5 log 0.5 - 0.25, gradient G * (1 - 0.5).
    expected = (0.5 * np.log(0.5) - 0.25) * 0.5
    assert focal_loss_gradient([1], [0.0], gamma=2.0) == pytest.approx([expected], rel=1e-14)
    assert focal_loss_gradient([0], [0.0], gamma=2.0) == pytest.approx([-expected], rel=1e-14)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_logit_matches_two_class_softmax(gamma):
    y, raw, sw = _binary_problem(2)
    two_class = np.column_stack([np.zeros_like(raw), raw])
    assert focal_loss(y, raw, gamma=gamma, sample_weight=sw) == pytest.approx(
        focal_loss(y, two_class, gamma=gamma, sample_weight=sw), rel=1e-12
    )
    grad = focal_loss_gradient(y, raw, gamma=gamma, sample_weight=sw)
    grad_two = focal_loss_gradient(y, two_class, gamma=gamma, sample_weight=sw)
    np.testing.assert_allclose(grad, grad_two[:, 1], rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(grad_two[:, 0], -grad_two[:, 1], rtol=1e-12, atol=1e-16)


def test_sample_weight_scalar_and_none_agree():
    y, raw, _ = _multiclass_problem(3)
    assert focal_loss(y, raw, sample_weight=2.5) == pytest.approx(focal_loss(y, raw), rel=1e-14)
    np.testing.assert_allclose(
        focal_loss_gradient(y, raw, sample_weight=np.full(len(y), 7.0)),
        focal_loss_gradient(y, raw),
        rtol=1e-14,
    )


def test_zero_weight_drops_a_sample():
    y, raw, sw = _multiclass_problem(4)
    sw[0] = 0.0
    assert focal_loss(y, raw, sample_weight=sw) == pytest.approx(
        focal_loss(y[1:], raw[1:], sample_weight=sw[1:]), rel=1e-14
    )
    assert np.all(focal_loss_gradient(y, raw, sample_weight=sw)[0] == 0)


def test_focal_down_weights_easy_examples():
    # A confident correct prediction loses (1 - p_t)**gamma of its cross-entropy.
    raw = np.array([3.0])
    p_t = expit(3.0)
    assert focal_loss([1], raw, gamma=2.0) == pytest.approx(
        (1 - p_t) ** 2 * focal_loss([1], raw, gamma=0.0), rel=1e-12
    )


# Gradient -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("problem", [_binary_problem, _multiclass_problem])
def test_gradient_matches_finite_differences(problem, gamma):
    y, raw, sw = problem(5)
    grad = focal_loss_gradient(y, raw, gamma=gamma, sample_weight=sw)
    assert grad.shape == raw.shape
    numeric = _central_differences(y, raw, gamma, sw)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_gradient_is_not_reweighted_cross_entropy(gamma):
    y, raw, _ = _multiclass_problem(6)
    proba = softmax(raw, axis=1)
    onehot = np.eye(raw.shape[1])[y]
    p_t = proba[np.arange(len(y)), y]
    reweighted = ((1 - p_t) ** gamma)[:, None] * (proba - onehot) / len(y)
    grad = focal_loss_gradient(y, raw, gamma=gamma)
    assert np.max(np.abs(grad - reweighted)) > 1e-3
    # The difference is exactly the derivative of the modulating factor.
    extra = gamma * (1 - p_t) ** (gamma - 1) * p_t * np.log(p_t)
    np.testing.assert_allclose(
        grad - reweighted, extra[:, None] * (onehot - proba) / len(y), rtol=1e-9, atol=1e-15
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_accurate_when_true_class_is_certain(gamma):
    # u = 1 - p_t is ~4e-18 here: a log-softmax would give log p_t = 0 and a loss of 0.
    u = np.exp(-40.0) / (1 + np.exp(-40.0))
    loss, grad = _focal_terms(np.array([1]), np.array([40.0]), gamma)
    assert loss[0] == pytest.approx(u**gamma * np.log1p(np.exp(-40.0)), rel=1e-12)
    # G -> -(1 + gamma) u**gamma as u -> 0, and the gradient is G * u.
    assert grad[0] == pytest.approx(-(1 + gamma) * u ** (gamma + 1), rel=1e-12)

    u = 2 * np.exp(-40.0) / (1 + 2 * np.exp(-40.0))
    loss, grad = _focal_terms(np.array([0]), np.array([[40.0, 0.0, 0.0]]), gamma)
    assert loss[0] == pytest.approx(u**gamma * np.log1p(2 * np.exp(-40.0)), rel=1e-12)
    assert grad[0, 0] == pytest.approx(-(1 + gamma) * u ** (gamma + 1), rel=1e-12)
    assert grad[0, 1] == pytest.approx(-grad[0, 0] / 2, rel=1e-12)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_extreme_logits_are_finite(gamma):
    raw = np.array([1e3, -1e3, 1e3, -1e3, 0.0])
    y = np.array([1, 1, 0, 0, 1])
    loss, grad = _focal_terms(y, raw, gamma)
    np.testing.assert_allclose(loss, [0, 1e3, 1e3, 0, 0.5**gamma * np.log(2)], rtol=1e-12)
    # Hopelessly wrong: u = 1 so G = -1 and the gradient is -(y - p) = +-1.
    np.testing.assert_allclose(grad[:4], [0, -1, 1, 0], atol=1e-300)

    raw = np.array([[1e3, -1e3, 0.0], [-1e3, 1e3, 1e3], [0.0, 0.0, -1e3]])
    y = np.array([0, 0, 2])
    loss, grad = _focal_terms(y, raw, gamma)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss[:2], [0, 2e3 + np.log(2)], rtol=1e-12)
    np.testing.assert_allclose(grad[1], [-1, 0.5, 0.5], rtol=1e-12)
    assert focal_loss(y, raw, gamma=gamma) >= 0
    assert np.all(np.isfinite(focal_loss_gradient(y, raw, gamma=gamma)))


@settings(max_examples=60, deadline=None)
@given(
    raw=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 5)),
               elements=st.floats(-50, 50)),
    labels=st.lists(st.integers(0, 4), min_size=6, max_size=6),
    gamma=st.floats(0, 5),
)
def test_multiclass_finite_nonnegative_and_rows_sum_to_zero(raw, labels, gamma):
    y = np.array(labels[: raw.shape[0]]) % raw.shape[1]
    loss, grad = _focal_terms(y, raw, gamma)
    assert np.all(np.isfinite(loss)) and np.all(loss >= 0)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-12)
    # The true class's logit is pushed up, the others down (G <= 0).
    rows = np.arange(len(y))
    assert np.all(grad[rows, y] <= 0)
    assert focal_loss(y, raw, gamma=gamma) == pytest.approx(loss.mean(), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    raw=arrays(np.float64, st.integers(1, 8), elements=st.floats(-50, 50)),
    labels=st.lists(st.integers(0, 1), min_size=8, max_size=8),
    gamma=st.floats(0, 5),
)
def test_binary_finite_nonnegative_and_agrees_with_softmax(raw, labels, gamma):
    y = np.array(labels[: raw.shape[0]])
    loss, grad = _focal_terms(y, raw, gamma)
    assert np.all(np.isfinite(loss)) and np.all(loss >= 0)
    assert np.all(np.isfinite(grad))
    assert np.all(grad * np.where(y == 1, 1, -1) <= 0)
    loss_two, grad_two = _focal_terms(y, np.column_stack([np.zeros_like(raw), raw]), gamma)
    np.testing.assert_allclose(loss, loss_two, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(grad, grad_two[:, 1], rtol=1e-9, atol=1e-300)


# Validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("function", [focal_loss, focal_loss_gradient])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gamma": -1.0}, "gamma must be finite and >= 0"),
        ({"gamma": np.inf}, "gamma must be finite and >= 0"),
        ({"gamma": np.nan}, "gamma must be finite and >= 0"),
        ({"gamma": "2"}, "gamma must be a real number"),
        ({"gamma": True}, "gamma must be a real number"),
        ({"raw_prediction": np.zeros((3, 2, 2))}, "must be 1-D .* or 2-D"),
        ({"raw_prediction": np.zeros((3, 1))}, "at least 2 columns"),
        ({"raw_prediction": np.array(["a", "b", "c"])}, "real-valued logits"),
        ({"raw_prediction": [0.0, np.nan, 1.0]}, "NaN or infinite"),
        ({"raw_prediction": [0.0, np.inf, 1.0]}, "NaN or infinite"),
        ({"raw_prediction": np.zeros(0), "y_true": []}, "0 samples"),
        ({"y_true": [0, 1]}, "different lengths"),
        ({"y_true": [[0], [1], [1]]}, "y_true must be 1-D"),
        ({"y_true": ["a", "b", "a"]}, "integer-encoded classes"),
        ({"y_true": [0.0, 0.5, 1.0]}, "integer class indices"),
        ({"y_true": [0, 1, 2]}, "0 or 1 for a 1-D"),
        ({"y_true": [0, -1, 1]}, "0 or 1 for a 1-D"),
        ({"raw_prediction": np.zeros((3, 3)), "y_true": [0, 1, 3]}, r"in 0\.\.2"),
        ({"sample_weight": [1.0, 1.0]}, r"shape \(3,\)"),
        ({"sample_weight": [1.0, -1.0, 1.0]}, "finite and non-negative"),
        ({"sample_weight": [1.0, np.nan, 1.0]}, "finite and non-negative"),
        ({"sample_weight": [0.0, 0.0, 0.0]}, "zero for every sample"),
        ({"sample_weight": ["a", "b", "c"]}, "sample_weight must be numeric"),
    ],
)
def test_validation_errors(function, kwargs, match):
    arguments = {"y_true": [0, 1, 1], "raw_prediction": [0.0, 1.0, -1.0], "gamma": 2.0}
    arguments.update(kwargs)
    y_true = arguments.pop("y_true")
    raw = arguments.pop("raw_prediction")
    with pytest.raises(ValueError, match=match):
        function(y_true, raw, **arguments)


def test_accepts_integral_floats_and_booleans():
    raw = [0.5, -0.5, 2.0]
    expected = focal_loss([1, 0, 1], raw)
    assert focal_loss([1.0, 0.0, 1.0], raw) == expected
    assert focal_loss([True, False, True], raw) == expected
