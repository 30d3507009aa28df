"""The aggregator's solver: optimality, warm starts, the tracking mode and the Newton step."""

import warnings
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from skcfe import _aggregator
from skcfe._aggregator import (
    _fit_own,
    _hessian,
    _newton_direction,
    _row_hessians,
    features,
    fit_weighted,
    prior_intercept,
)
from skcfe._losses import _focal_terms
from skcfe._threads import blas_threads
from skcfe.backends import als, fold_in

from .test_als import make_problem, make_settings


def make_data(n_classes, seed, n=120, q=6):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    F = rng.standard_normal((n, q)) + 0.8 * (y[:, None] == np.arange(q) % n_classes)
    w = rng.uniform(0.2, 3.0, n)
    return F, y, w


def start(F, y, w, n_classes):
    k = 1 if n_classes == 2 else n_classes
    return np.zeros((k, F.shape[1])), prior_intercept(y, w, n_classes)


def objective_and_gradient(F, y, w, coef, intercept, gamma, alpha):
    """The objective fit_weighted minimizes, and its gradient in (coef, intercept)."""
    weights = w / w.sum()
    raw = F @ coef.T + intercept
    raw = raw[:, 0] if coef.shape[0] == 1 else raw
    loss, grad = _focal_terms(y, raw, gamma)
    g = grad.reshape(len(y), -1) * weights[:, None]
    value = np.dot(weights, loss) + 0.5 * alpha * np.sum(coef * coef)
    return value, g.T @ F + alpha * coef, g.sum(axis=0)


@settings(max_examples=25, deadline=None)
@given(
    n_classes=st.sampled_from([2, 3, 4]),
    gamma=st.sampled_from([0.0, 0.5, 2.0]),
    alpha=st.sampled_from([1e-4, 1e-2, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_solution_is_stationary_and_centred(n_classes, gamma, alpha, seed):
    F, y, w = make_data(n_classes, seed)
    coef, intercept = fit_weighted(F, y, w, *start(F, y, w, n_classes), gamma=gamma, alpha=alpha)
    _, g_coef, g_intercept = objective_and_gradient(F, y, w, coef, intercept, gamma, alpha)
    assert np.max(np.abs(g_coef)) < 1e-9 and np.max(np.abs(g_intercept)) < 1e-9
    if n_classes > 2:
        # The softmax shift is flat; the solution is the centred one.
        np.testing.assert_allclose(coef.sum(axis=0), 0.0, atol=1e-12)
        assert abs(intercept.sum()) < 1e-12


@pytest.mark.parametrize("n_classes", [2, 3])
def test_warm_start_does_not_change_the_convex_solution(n_classes):
    F, y, w = make_data(n_classes, 0)
    cold = fit_weighted(F, y, w, *start(F, y, w, n_classes), gamma=0.0, alpha=1e-3)
    rng = np.random.default_rng(1)
    coef0, intercept0 = start(F, y, w, n_classes)
    warm = fit_weighted(
        F, y, w, coef0 + rng.standard_normal(coef0.shape), intercept0 + 1.0, gamma=0.0, alpha=1e-3
    )
    for a, b in zip(cold, warm):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_tracking_steps_descend_and_full_precision_follows(n_classes, gamma):
    F, y, w = make_data(n_classes, 3)
    coef0, intercept0 = start(F, y, w, n_classes)
    before = objective_and_gradient(F, y, w, coef0, intercept0, gamma, 1e-3)[0]
    one = fit_weighted(F, y, w, coef0, intercept0, gamma=gamma, alpha=1e-3, newton_steps=1)
    after = objective_and_gradient(F, y, w, *one, gamma, 1e-3)
    assert after[0] < before
    # One step from the prior is not the optimum yet ...
    assert np.max(np.abs(after[1])) > 1e-6
    # ... and a full solve from it lands where a full solve from the start does.
    polished = fit_weighted(F, y, w, *one, gamma=gamma, alpha=1e-3)
    direct = fit_weighted(F, y, w, coef0, intercept0, gamma=gamma, alpha=1e-3)
    for a, b in zip(polished, direct):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 5), q=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_newton_direction_with_a_flat_softmax_shift_matches_least_squares(k, q, seed):
    """Curvature added along the flat shift of the intercepts changes no other direction."""
    rng = np.random.default_rng(seed)
    p = q + 1
    A = rng.standard_normal((k * p, k * p))
    H = A @ A.T + 0.1 * np.eye(k * p)
    shift = np.zeros(k * p)
    shift[np.arange(k) * p + q] = 1.0 / np.sqrt(k)
    # Make the shift exactly flat, as the softmax loss with unpenalized intercepts has it.
    projector = np.eye(k * p) - np.outer(shift, shift)
    H = projector @ H @ projector
    gradient = projector @ rng.standard_normal(k * p)
    expected = np.linalg.lstsq(H, gradient, rcond=1e-12)[0]
    got = _newton_direction(H.copy(), gradient.reshape(k, p), q).ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_als_returns_the_exact_aggregator_of_its_final_features(n_classes):
    """Between sweeps ALS only tracks the aggregator; the returned one is fully solved."""
    problem = make_problem(n_classes=n_classes, labeled_fraction=0.8)
    s = make_settings(latent_dim=4, lambda_reg=1e-3)
    result = als.fit(problem, s, np.random.default_rng(0))
    X = result.classifier_factors
    lab = problem.labeled
    Y = fold_in(problem.R, problem.C_free, X, s.lambda_reg, problem.confidence_scale)
    F = features((Y @ X.T)[lab], s.aggregator_input)
    y, w = problem.y[lab], problem.sample_weight[lab]
    direct = fit_weighted(
        F, y, w, *start(F, y, w, n_classes), gamma=s.focal_gamma, alpha=s.aggregator_alpha
    )
    np.testing.assert_allclose(result.coef, direct[0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(result.intercept, direct[1], rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# gamma = 0: LogisticRegression, and where the own solver remains
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("alpha", [1e-4, 1e-2, 1.0])
def test_logistic_regression_solves_the_own_newton_problem(n_classes, weighted, alpha):
    """C = 1 / (alpha sum s) maps LogisticRegression onto the objective exactly.

    The own damped Newton (run directly, from the log-prior intercept) and
    LogisticRegression (from zero) reach the same weights: differences are
    below 1e-9 here, the solvers' tolerance; any error in the mapping of alpha
    onto C, the weighting or the unpenalized intercept would show at ~1e-2.
    """
    F, y, w = make_data(n_classes, seed=n_classes)
    if not weighted:
        w = np.ones_like(w)
    coef0, intercept0 = start(F, y, w, n_classes)
    with mock.patch.object(_aggregator, "LogisticRegression", wraps=LogisticRegression) as spy:
        coef, intercept = fit_weighted(F, y, w, coef0, intercept0, gamma=0.0, alpha=alpha)
    spy.assert_called_once()
    theta = _fit_own(F, y, w, coef0, intercept0, 0.0, alpha, 1000, None)
    if n_classes > 2:
        theta = theta - theta.mean(axis=0)
    np.testing.assert_allclose(coef, theta[:, :-1], rtol=0, atol=1e-8)
    np.testing.assert_allclose(intercept, theta[:, -1], rtol=0, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(n_classes=st.sampled_from([2, 3, 6]), scale=st.sampled_from([0.1, 3.0, 12.0]),
       seed=st.integers(0, 2**16))
def test_cross_entropy_row_hessians_match_central_differences(n_classes, scale, seed):
    """gamma = 0 in closed form (p(1 - p), diag(p) - p p^T) against the focal
    loss's central differences at gamma = 0, which the focal loss uses: a
    sign, a missing one-hot or a transposed block differs by O(p)."""
    rng = np.random.default_rng(seed)
    k = 1 if n_classes == 2 else n_classes
    y = rng.integers(0, n_classes, 50)
    raw = scale * rng.standard_normal(50 if k == 1 else (50, k))
    grad = _focal_terms(y, raw, 0.0)[1].reshape(50, k)
    exact = _row_hessians(y, raw, grad, 0.0, k, 1e-5)
    numeric = _row_hessians(y, raw, grad, 1e-300, k, 1e-5)  # the focal path, gamma ~ 0
    assert exact.shape == (50, k, k)
    np.testing.assert_allclose(exact, numeric, rtol=0, atol=1e-7)
    np.testing.assert_allclose(exact, exact.transpose(0, 2, 1))
    if k > 1:  # softmax: each row's Hessian annihilates the shift (1, ..., 1)
        np.testing.assert_allclose(exact.sum(axis=2), 0.0, atol=1e-15)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_warm_start_solves_by_newton_to_logistic_regressions_solution(n_classes):
    """The backends' last solve starts from the tracked weights: the own Newton
    from there, never LogisticRegression (which restarts from zero), and the
    same optimum as LogisticRegression from a cold start."""
    F, y, w = make_data(n_classes, seed=11)
    cold = fit_weighted(F, y, w, *start(F, y, w, n_classes), gamma=0.0, alpha=1e-2)
    near = (cold[0] + 0.05, cold[1] - 0.05)
    with mock.patch.object(_aggregator, "LogisticRegression") as spy:
        warm = fit_weighted(F, y, w, *near, gamma=0.0, alpha=1e-2, warm_start=True)
    spy.assert_not_called()
    for got, want in zip(warm, cold):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    "case",
    ["focal", "tracking", "large", "missing class"],
)
def test_own_solver_where_logistic_regression_does_not_apply(case):
    """The focal loss, warm-started tracking steps, > 1500 weights and a missing class."""
    n_classes = 2 if case in ("focal", "tracking") else 3
    F, y, w = make_data(n_classes, seed=5, q=510 if case == "large" else 6)
    if case == "missing class":
        keep = y != 2
        F, y, w = F[keep], y[keep], w[keep]
    kwargs = {"gamma": 2.0 if case == "focal" else 0.0, "alpha": 1e-2}
    if case == "tracking":
        kwargs["newton_steps"] = 2
    with mock.patch.object(_aggregator, "LogisticRegression") as spy:
        coef, intercept = fit_weighted(F, y, w, *start(F, y, w, n_classes), **kwargs)
    spy.assert_not_called()
    assert np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))


def test_logistic_regression_warning_falls_back_to_own_newton_silently():
    """alpha = 0 with exactly collinear columns: LogisticRegression meets a
    singular Hessian and warns; the own Newton solves instead, and no warning
    escapes (backends never warn)."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((300, 2))
    F = np.column_stack([Z, Z @ [1.0, 2.0]])
    y = (rng.random(300) < 1.0 / (1.0 + np.exp(-Z[:, 0]))).astype(int)
    w = rng.uniform(0.5, 2.0, 300)
    with (
        warnings.catch_warnings(),
        mock.patch.object(_aggregator, "_fit_own", wraps=_fit_own) as own,
    ):
        warnings.simplefilter("error")
        coef, intercept = fit_weighted(F, y, w, *start(F, y, w, 2), gamma=0.0, alpha=0.0)
    own.assert_called_once()
    _, g_coef, g_intercept = objective_and_gradient(F, y, w, coef, intercept, 0.0, 0.0)
    assert np.max(np.abs(g_coef)) < 1e-9 and np.max(np.abs(g_intercept)) < 1e-9


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 4), p=st.integers(1, 5),
       rows_per_block=st.integers(1, 70), n_threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_hessian_by_row_blocks_is_the_sum_over_rows(n, k, p, rows_per_block, n_threads, seed):
    """Any blocking, in any number of threads: sum_i hess_i (x) F1_i F1_i^T to rounding."""
    rng = np.random.default_rng(seed)
    F1 = rng.standard_normal((n, p))
    A = rng.standard_normal((n, k, k))
    hess = A @ A.transpose(0, 2, 1)
    expected = np.einsum("iab,iu,iv->aubv", hess, F1, F1).reshape(k * p, k * p)
    got = _hessian(F1, hess, rows_per_block, n_threads)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_newton_runs_blas_on_one_thread_and_its_result_does_not_depend_on_blas_threads():
    """Two OpenBLAS libraries (numpy's, scipy's) with spinning threads made a 10-class
    Newton step 2.4x slower; every product in it now runs on one BLAS thread, split
    into row blocks across threads instead, so the result is the same for any limit."""
    rng = np.random.default_rng(0)
    F = rng.standard_normal((3000, 6))
    y = rng.integers(0, 3, 3000)
    w = np.ones(3000)
    seen = []

    def spy(*args):
        seen.append(blas_threads())
        return _hessian(*args)

    results = []
    for limit in (1, 2):  # 100-row blocks: sequential, then in 2 threads
        with (threadpool_limits(limit), mock.patch.object(_aggregator, "_hessian", spy),
              mock.patch.object(_aggregator, "BLOCK_ENTRIES", 900)):
            results.append(fit_weighted(F, y, w, np.zeros((3, 6)), np.zeros(3), gamma=1.0,
                                        alpha=1e-2, warm_start=True))
    assert seen and set(seen) == {1}
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
