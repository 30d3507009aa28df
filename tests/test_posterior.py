"""Tests of the focal / class-weight posterior correction (skcfe._posterior).

The oracles of design.md ("Posterior correction") are recomputed here by minimizing the
class-weighted focal risk numerically, independently of the library's code.
"""

import doctest

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import optimize
from scipy.special import softmax

import skcfe._posterior
from skcfe._posterior import _psi, focal_posterior_correction

BALANCED_10_PERCENT = (1 / (2 * 0.9), 1 / (2 * 0.1))


def _focal_derivative(q, gamma):
    """d/dq of -(1 - q)**gamma log q."""
    modulating_slope = gamma * (1.0 - q) ** (gamma - 1.0) * np.log(q) if gamma > 0 else 0.0
    return modulating_slope - (1.0 - q) ** gamma / q


def _risk_gradient(free_logits, weighted_p, gamma):
    q = softmax(np.append(free_logits, 0.0))
    dq = weighted_p * _focal_derivative(q, gamma)
    return (q * (dq - q @ dq))[:-1]


def _risk(free_logits, weighted_p, gamma):
    q = softmax(np.append(free_logits, 0.0))
    risk = -(weighted_p * (1.0 - q) ** gamma * np.log(q)).sum()
    return risk, _risk_gradient(free_logits, weighted_p, gamma)


def _newton_polish(free_logits, weighted_p, gamma, n_steps=4, step=1e-5):
    """Newton steps on the stationarity equations, Hessian by central differences."""
    for _ in range(n_steps):
        columns = [
            _risk_gradient(free_logits + step * e, weighted_p, gamma)
            - _risk_gradient(free_logits - step * e, weighted_p, gamma)
            for e in np.eye(free_logits.size)
        ]
        hessian = np.column_stack(columns) / (2 * step)
        hessian = (hessian + hessian.T) / 2
        gradient = _risk_gradient(free_logits, weighted_p, gamma)
        free_logits = free_logits - np.linalg.solve(hessian, gradient)
    return free_logits


def focal_minimizer(p, gamma, class_weight=None):
    """Minimize sum_k w_k p_k FL_gamma(q_k) over the simplex (q = softmax of free logits).

    Quasi-Newton descent stalls on the flat risk with a gradient near 1e-9; Newton steps
    from its solution bring the gradient down to round-off.
    """
    p = np.asarray(p, dtype=float)
    weighted_p = p if class_weight is None else p * np.asarray(class_weight, dtype=float)
    weighted_p = weighted_p / weighted_p.sum()
    start = np.log(p[:-1]) - np.log(p[-1])
    # Picked for speed: BFGS's dense updates are slow on 100 classes, L-BFGS-B's fixed
    # per-iteration cost dominates on a few.
    descent = optimize.minimize(
        _risk, start, args=(weighted_p, gamma), jac=True,
        method="BFGS" if p.size <= 10 else "L-BFGS-B", options={"gtol": 1e-10},
    )
    solution = _newton_polish(descent.x, weighted_p, gamma)
    assert np.abs(_risk_gradient(solution, weighted_p, gamma)).max() < 1e-13
    assert _risk(solution, weighted_p, gamma)[0] <= _risk(descent.x, weighted_p, gamma)[0] + 1e-14
    return softmax(np.append(solution, 0.0))


def _binary(p):
    return np.array([1.0 - p, p])


# Oracles of design.md -----------------------------------------------------------------------

BINARY_TABLE = [
    (0.9, [1, 2, 3, 5], [0.7744, 0.6942, 0.6471, 0.5974], 5e-5),
    (0.99, [1, 2, 3, 5], [0.9270, 0.8464, 0.7800, 0.6953], 5e-5),
    (0.1, [1, 2, 3, 5], [0.2256, 0.3058, 0.3529, 0.4026], 5e-5),
    (0.01, [1, 2, 3], [0.073, 0.154, 0.220], 5e-4),
]


@pytest.mark.parametrize(
    "p, gamma, expected, atol",
    [
        (p, gamma, q, atol)
        for p, gammas, qs, atol in BINARY_TABLE
        for gamma, q in zip(gammas, qs)
    ],
)
def test_binary_oracle(p, gamma, expected, atol):
    q_star = focal_minimizer(_binary(p), gamma)
    assert q_star[1] == pytest.approx(expected, abs=atol)
    np.testing.assert_allclose(_psi(q_star[None], gamma)[0], _binary(p), atol=1e-9)
    np.testing.assert_allclose(
        focal_posterior_correction(q_star[None], gamma=gamma)[0], _binary(p), atol=1e-9
    )


@pytest.mark.parametrize(
    "gamma, expected",
    [
        (1, [0.5332, 0.3410, 0.1258]),
        (2, [0.4889, 0.3531, 0.1580]),
        (3, [0.4587, 0.3540, 0.1873]),
    ],
)
def test_three_class_oracle(gamma, expected):
    p = np.array([0.6, 0.3, 0.1])
    q_star = focal_minimizer(p, gamma)
    np.testing.assert_allclose(q_star, expected, atol=5e-5)
    np.testing.assert_allclose(focal_posterior_correction(q_star[None], gamma=gamma)[0], p,
                               atol=1e-9)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_balanced_weights_oracle(gamma):
    p = _binary(0.1)
    q_star = focal_minimizer(p, gamma, BALANCED_10_PERCENT)
    np.testing.assert_allclose(q_star, [0.5, 0.5], atol=1e-10)
    corrected = focal_posterior_correction(
        q_star[None], gamma=gamma, class_weight=BALANCED_10_PERCENT
    )
    np.testing.assert_allclose(corrected[0], p, atol=1e-9)
    # The table's rounded weight 0.556 moves q* off 0.5 only in the fourth decimal.
    rounded = focal_minimizer(p, gamma, (0.556, 5.0))
    assert rounded[1] == pytest.approx(0.5, abs=1e-3)


def test_alpha_weights_oracle():
    p = _binary(0.3)
    weights = (0.75, 0.25)
    q_star = focal_minimizer(p, 2.0, weights)
    assert q_star[1] == pytest.approx(0.3260, abs=5e-5)
    corrected = focal_posterior_correction(q_star[None], gamma=2.0, class_weight=weights)
    np.testing.assert_allclose(corrected[0], p, atol=1e-9)
    # Neither inverse alone is enough.
    assert focal_posterior_correction(q_star[None], gamma=2.0)[0, 1] < 0.2
    assert focal_posterior_correction(q_star[None], gamma=0.0, class_weight=weights)[0, 1] > 0.5


@pytest.mark.parametrize("gamma, ratio", [(1, 0.942), (2, 0.910), (5, 0.870)])
def test_many_classes_zipf_oracle(gamma, ratio):
    ranks = np.arange(1, 101)
    p = (1 / ranks) / (1 / ranks).sum()
    q_star = focal_minimizer(p, gamma)
    assert q_star[-1] / p[-1] == pytest.approx(ratio, abs=1e-3)
    # No dominant class, so the focal minimizer takes mass from the whole tail.
    assert np.all(q_star[-50:] < p[-50:])
    np.testing.assert_allclose(_psi(q_star[None], gamma)[0], p, rtol=1e-7)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0, 5.0])
def test_binary_minority_is_always_raised(gamma):
    for p in np.linspace(0.005, 0.495, 15):
        q_star = focal_minimizer(_binary(p), gamma)
        assert p < q_star[1] < 0.5
        # ... and the correction lowers it back.
        assert focal_posterior_correction(q_star[None], gamma=gamma)[0, 1] < q_star[1]


def test_cross_entropy_minimizer_is_the_posterior():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(focal_minimizer(p, 0.0), p, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    raw=arrays(np.float64, st.integers(2, 5), elements=st.floats(0.03, 1.0)),
    gamma=st.floats(0, 5),
    log_weights=arrays(np.float64, 5, elements=st.floats(-2, 2)),
    weighted=st.booleans(),
)
def test_correction_inverts_the_weighted_focal_minimizer(raw, gamma, log_weights, weighted):
    p = raw / raw.sum()
    weights = np.exp(log_weights[: p.size]) if weighted else None
    q_star = focal_minimizer(p, gamma, weights)
    corrected = focal_posterior_correction(q_star[None], gamma=gamma, class_weight=weights)
    np.testing.assert_allclose(corrected[0], p, atol=1e-8)


# Properties ---------------------------------------------------------------------------------

probability_rows = arrays(
    np.float64,
    st.tuples(st.integers(1, 5), st.integers(2, 6)),
    elements=st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1e-300, 1e-15, 1.0])),
)


def _normalize(raw):
    assume(np.all(raw.sum(axis=1) > 0))
    return raw / raw.sum(axis=1, keepdims=True)


@settings(max_examples=80, deadline=None)
@given(raw=probability_rows, gamma=st.floats(0, 20))
def test_valid_probabilities_out_and_argmax_kept(raw, gamma):
    q = _normalize(raw)
    out = focal_posterior_correction(q, gamma=gamma)
    assert out.shape == q.shape and out.dtype == np.float64
    assert np.all(np.isfinite(out))
    assert np.all((out >= 0) & (out <= 1))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    rows = np.arange(q.shape[0])
    # h is increasing, so the input's top class stays on top (up to round-off on near-ties).
    assert np.all(out[rows, q.argmax(axis=1)] >= out.max(axis=1) * (1 - 1e-9))


@settings(max_examples=60, deadline=None)
@given(raw=probability_rows)
def test_gamma_zero_is_identity(raw):
    q = _normalize(raw)
    np.testing.assert_allclose(focal_posterior_correction(q, gamma=0.0), q, atol=1e-11)


@settings(max_examples=60, deadline=None)
@given(raw=probability_rows, log_weights=arrays(np.float64, 6, elements=st.floats(-2, 2)))
def test_prior_shift_inverse_undoes_a_prior_shift(raw, log_weights):
    p = _normalize(raw)
    weights = np.exp(log_weights[: p.shape[1]])
    shifted = p * weights
    shifted /= shifted.sum(axis=1, keepdims=True)
    recovered = focal_posterior_correction(shifted, gamma=0.0, class_weight=weights)
    np.testing.assert_allclose(recovered, p, atol=1e-9)


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.0, 5.0, 20.0])
def test_binary_correction_is_strictly_increasing(gamma):
    v = np.linspace(1e-6, 1 - 1e-6, 2001)
    corrected = focal_posterior_correction(np.column_stack([1 - v, v]), gamma=gamma)[:, 1]
    # Checked below 0.5, where float64 resolves the output; symmetry gives the rest.
    assert np.all(np.diff(corrected[v <= 0.5]) > 0)
    assert np.all(np.diff(corrected) >= 0)
    np.testing.assert_allclose(corrected + corrected[::-1], 1.0, atol=1e-12)


def test_fixed_points_and_extremes():
    uniform = np.full((1, 4), 0.25)
    np.testing.assert_allclose(focal_posterior_correction(uniform, gamma=3.0), uniform)
    one_hot = np.eye(3)
    for gamma in (0.5, 2.0, 100.0):
        out = focal_posterior_correction(one_hot, gamma=gamma)
        np.testing.assert_allclose(out, one_hot, atol=1e-11)
    assert focal_posterior_correction(np.zeros((0, 3)), gamma=2.0).shape == (0, 3)


def test_tolerant_inputs_are_renormalized():
    proba = np.array([[0.7, 0.3 + 1e-8], [1.0 + 1e-9, -1e-9]], dtype=np.float64)
    out = focal_posterior_correction(proba, gamma=1.0)
    assert np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-15)
    out32 = focal_posterior_correction(np.array([[0.2, 0.8]], dtype=np.float32), gamma=2.0)
    assert out32.dtype == np.float64
    np.testing.assert_allclose(out32, focal_posterior_correction([[0.2, 0.8]], gamma=2.0),
                               atol=1e-6)


def test_docstring_examples_run():
    result = doctest.testmod(skcfe._posterior, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


# Validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proba, kwargs, match",
    [
        ([[0.5, 0.5]], {"gamma": -0.5}, "gamma must be finite and >= 0"),
        ([[0.5, 0.5]], {"gamma": np.nan}, "gamma must be finite and >= 0"),
        ([[0.5, 0.5]], {"gamma": "1"}, "gamma must be a real number"),
        ([0.5, 0.5], {}, r"2-D with shape \(n_samples, n_classes\)"),
        ([[1.0], [1.0]], {}, "n_classes >= 2"),
        (np.full((2, 2, 2), 0.5), {}, "2-D"),
        ([["a", "b"]], {}, "numeric array of probabilities"),
        ([[np.nan, 1.0]], {}, "NaN or infinite"),
        ([[1.5, -0.5]], {}, r"must lie in \[0, 1\]"),
        ([[0.5, 0.4]], {}, "must sum to 1"),
        ([[0.6, 0.6]], {}, "must sum to 1"),
        ([[0.5, 0.5]], {"class_weight": [1.0, 1.0, 1.0]}, r"shape \(2,\)"),
        ([[0.5, 0.5]], {"class_weight": [[1.0, 1.0]]}, r"shape \(2,\)"),
        ([[0.5, 0.5]], {"class_weight": [1.0, 0.0]}, "positive and finite"),
        ([[0.5, 0.5]], {"class_weight": [1.0, -2.0]}, "positive and finite"),
        ([[0.5, 0.5]], {"class_weight": [1.0, np.inf]}, "positive and finite"),
        ([[0.5, 0.5]], {"class_weight": ["a", "b"]}, "class_weight must be a numeric"),
    ],
)
def test_validation_errors(proba, kwargs, match):
    kwargs = {"gamma": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        focal_posterior_correction(proba, **kwargs)
