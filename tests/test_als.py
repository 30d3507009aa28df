"""The ALS backend and the shared batched ridge solver."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skcfe import _threads
from skcfe._aggregator import aggregate, supervised_loss
from skcfe._confidence import certainty, label_targets
from skcfe._objective import combine, reconstruction_loss
from skcfe.backends import Problem, Settings, _result, als, fold_in, ridge_solve


def _loop_ridge(R, V, F, reg):
    d = F.shape[1]
    return np.array([np.linalg.solve(F.T @ (v[:, None] * F) + reg * np.eye(d), F.T @ (v * r)) for r, v in zip(R, V)])


def make_problem(n=200, m=4, n_classes=2, labeled_fraction=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    if n_classes == 2:
        R = np.clip(0.5 + (y[:, None] - 0.5) * rng.uniform(0.1, 0.8, (n, m)) + 0.2 * rng.standard_normal((n, m)), 0, 1)
    else:
        logits = 2.0 * (y[:, None, None] == np.arange(n_classes)) + rng.standard_normal((n, m, n_classes))
        P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
        R = P.reshape(n, m * n_classes)
    labeled = rng.uniform(size=n) < labeled_fraction
    labeled[:n_classes] = True
    y[:n_classes] = np.arange(n_classes)
    C = certainty(R, n_classes)
    w = rng.uniform(0.5, 2.0, n)
    return Problem(
        R=R,
        C=C,
        C_free=C,
        T=label_targets(y, n_classes, m) * labeled[:, None],
        y=y,
        labeled=labeled,
        row_weight=w,
        sample_weight=np.where(labeled, w, 0.0),
        n_classes=n_classes,
    )


def make_settings(**kw):
    base = dict(
        latent_dim=3, rho=0.5, lambda_reg=0.1, focal_gamma=1.0, aggregator="weighted",
        aggregator_alpha=1e-3, max_iter=30, tol=1e-8,
    )
    base.update(kw)
    return Settings(**base)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    q=st.integers(1, 8),
    d=st.integers(1, 5),
    reg=st.floats(1e-3, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_ridge_solve_matches_per_row_solves(n, q, d, reg, seed):
    rng = np.random.default_rng(seed)
    R, V, F = rng.uniform(size=(n, q)), rng.uniform(size=(n, q)), rng.standard_normal((q, d))
    np.testing.assert_allclose(ridge_solve(R, V, F, reg), _loop_ridge(R, V, F, reg), rtol=1e-8, atol=1e-10)
    # A weight per observation is the same as multiplying V's columns by it.
    w = rng.uniform(0.0, 3.0, q)
    np.testing.assert_allclose(
        ridge_solve(R, V, F, reg, obs_weight=w), _loop_ridge(R, V * w, F, reg), rtol=1e-8, atol=1e-10
    )


# With d = 3 and a 50 x 40 problem (or its transpose), these workspaces give:
# one chunk; row chunks sharing every outer product; (transposed) one row chunk
# over observation chunks, each outer product built once; both chunked.
@pytest.mark.parametrize("workspace", [10_000, 500, 400, 30])
@pytest.mark.parametrize("transposed", [False, True])
def test_ridge_solve_chunks_both_dimensions(monkeypatch, workspace, transposed):
    rng = np.random.default_rng(0)
    R, V = rng.uniform(size=(50, 40)), rng.uniform(size=(50, 40))
    if transposed:  # the classifier step's in-place views: few rows, many observations
        R, V = R.T, V.T
    F = rng.standard_normal((R.shape[1], 3))
    w = rng.uniform(0.5, 2.0, R.shape[1])
    expected = _loop_ridge(R, V * w, F, 0.5)
    monkeypatch.setattr(_result, "_WORKSPACE_ENTRIES", workspace)
    np.testing.assert_allclose(ridge_solve(R, V, F, 0.5, obs_weight=w), expected, rtol=1e-10)


def test_singular_system_is_explained():
    R = np.ones((3, 2))
    V = np.zeros((3, 2))
    with pytest.raises(ValueError, match="singular.*Increase lambda_reg"):
        ridge_solve(R, V, np.ones((2, 2)), 0.0)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_factor_objective_never_increases_over_sweeps(n_classes, rho):
    problem = make_problem(n_classes=n_classes, labeled_fraction=0.7)
    V, share = als.factor_weights(problem, rho)
    X = als.initial_factors(problem.R, problem.row_weight, 3, np.random.default_rng(0))
    values = []
    for _ in range(15):
        Y = ridge_solve(problem.R, V, X, 0.1)
        values.append(als.factor_objective(problem.R, V, share, X, Y, 0.1))
        Y, X = als.factor_sweep(problem.R, V, share, X, 0.1)
        values.append(als.factor_objective(problem.R, V, share, X, Y, 0.1))
    assert np.all(np.diff(values) <= 1e-12 * np.abs(values[:-1]))
    assert values[-1] < values[0]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 25),
    q=st.integers(1, 7),
    d=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
)
def test_balance_keeps_the_product_and_minimizes_the_ridge_term(n, q, d, seed, scale):
    rng = np.random.default_rng(seed)
    Y = scale * rng.standard_normal((n, d))
    X = rng.standard_normal((q, d)) / scale
    share = rng.uniform(0.0, 1.0, n)
    share /= share.sum()
    Xb = als.balance(Y, X, share)
    assert Xb.shape == X.shape
    # P = diag(w~)^1/2 Y X^T / sqrt(q): the balanced side is V S^1/2, so
    # (Xb Xb^T / q)^2 = P^T P, which fixes the product up to a rotation.
    P = np.sqrt(share)[:, None] * Y @ X.T / np.sqrt(q)
    G = Xb @ Xb.T / q
    np.testing.assert_allclose(G @ G, P.T @ P, atol=1e-9 * np.linalg.norm(P) ** 2)
    # Its ridge share equals the other side's, and their sum, 2 tr(S), is the
    # nuclear norm of P: never above the ridge term of the pair it came from.
    nuclear = np.linalg.svd(P, compute_uv=False).sum()
    assert np.trace(G) == pytest.approx(nuclear, rel=1e-9, abs=1e-12)
    before = np.dot(share, np.sum(Y * Y, axis=1)) + np.sum(X * X) / q
    assert 2 * nuclear <= before * (1 + 1e-12) + 1e-15


@pytest.mark.parametrize("n_classes", [2, 3])
def test_balancing_never_increases_the_factor_objective(n_classes):
    problem = make_problem(n_classes=n_classes, labeled_fraction=0.7)
    V, share = als.factor_weights(problem, 0.5)
    X = als.initial_factors(problem.R, problem.row_weight, 3, np.random.default_rng(0))
    values = []
    for _ in range(10):
        Y, X = als.factor_sweep(problem.R, V, share, X, 1e-3)
        values.append(als.factor_objective(problem.R, V, share, X, Y, 1e-3))
        X = als.balance(Y, X, share)
        Y = ridge_solve(problem.R, V, X, 1e-3)
        values.append(als.factor_objective(problem.R, V, share, X, Y, 1e-3))
    assert np.all(np.diff(values) <= 1e-12 * np.abs(values[:-1]))


def test_balancing_makes_small_ridge_converge_in_a_few_sweeps():
    """Without balancing, lambda_reg = 1e-3 and latent_dim = q take > 100 sweeps here."""
    problem = make_problem(n=300, m=6, n_classes=3)
    V, share = als.factor_weights(problem, 0.5)
    q = problem.R.shape[1]

    def sweeps_to_settle(balanced):
        X = als.initial_factors(problem.R, problem.row_weight, q, np.random.default_rng(0))
        previous = np.inf
        for sweep in range(1, 301):
            Y, X = als.factor_sweep(problem.R, V, share, X, 1e-3)
            if balanced:
                X = als.balance(Y, X, share)
                Y = ridge_solve(problem.R, V, X, 1e-3)
            value = als.factor_objective(problem.R, V, share, X, Y, 1e-3)
            if abs(previous - value) <= 1e-6 * value:
                return sweep
            previous = value
        return sweep

    assert sweeps_to_settle(balanced=True) <= 10
    assert sweeps_to_settle(balanced=False) > 100
    result = als.fit(problem, make_settings(latent_dim=q, lambda_reg=1e-3, max_iter=100, tol=1e-6),
                     np.random.default_rng(0))
    assert result.converged and result.n_iter <= 10


def test_fold_in_of_training_rows_reproduces_their_representation():
    """The aggregator was trained on the fold-in of the training rows."""
    problem = make_problem(n_classes=3)
    s = make_settings()
    result = als.fit(problem, s, np.random.default_rng(0))
    Y = fold_in(problem.R, problem.C_free, result.classifier_factors, s.lambda_reg, problem.confidence_scale)
    R_hat = Y @ result.classifier_factors.T
    lab = problem.labeled
    raw = aggregate(R_hat[lab], "weighted", result.coef, result.intercept, 3)
    sup = supervised_loss(raw, problem.y[lab], problem.sample_weight[lab], s.focal_gamma)
    rec = reconstruction_loss(problem.R, problem.C, Y, result.classifier_factors, problem.row_weight, s.lambda_reg)
    assert sup == pytest.approx(result.history["supervised"][-1], rel=1e-12)
    assert rec == pytest.approx(result.history["reconstruction"][-1], rel=1e-12)
    assert combine(s.rho, rec, sup) == pytest.approx(result.history["objective"][-1], rel=1e-12)


def test_fit_is_deterministic_and_does_not_mutate_inputs():
    problem = make_problem(labeled_fraction=0.6)
    before = {k: v.copy() for k, v in vars(problem).items() if isinstance(v, np.ndarray)}
    a = als.fit(problem, make_settings(latent_dim=6), np.random.default_rng(1))
    b = als.fit(problem, make_settings(latent_dim=6), np.random.default_rng(1))
    np.testing.assert_array_equal(a.classifier_factors, b.classifier_factors)
    np.testing.assert_array_equal(a.coef, b.coef)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(problem, k), v)
    assert a.classifier_factors.dtype == np.float64 and a.classifier_factors.shape == (4, 6)


def test_weighting_rows_equals_repeating_them():
    problem = make_problem(n=60)
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 4, len(problem.y))
    weighted = Problem(**{**vars(problem), "row_weight": counts * 1.0, "sample_weight": counts * 1.0})
    rep = {k: np.repeat(v, counts, axis=0) for k, v in vars(problem).items() if isinstance(v, np.ndarray)}
    rep.update(row_weight=np.ones(counts.sum()), sample_weight=np.ones(counts.sum()))
    repeated = Problem(**rep, n_classes=2)
    # A fixed number of sweeps: stopping on tol could end one sweep apart.
    a = als.fit(weighted, make_settings(max_iter=10, tol=0.0), np.random.default_rng(0))
    b = als.fit(repeated, make_settings(max_iter=10, tol=0.0), np.random.default_rng(0))
    np.testing.assert_allclose(a.classifier_factors, b.classifier_factors, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-6, atol=1e-8)


def test_labels_shape_the_factors_only_below_rho_one():
    problem = make_problem(n_classes=2)
    flipped = Problem(**{**vars(problem), "y": 1 - problem.y, "T": 1.0 - problem.T})
    s = make_settings(rho=1.0)
    a = als.fit(problem, s, np.random.default_rng(0)).classifier_factors
    b = als.fit(flipped, s, np.random.default_rng(0)).classifier_factors
    np.testing.assert_allclose(a, b, rtol=1e-10)
    s = make_settings(rho=0.3)
    a = als.fit(problem, s, np.random.default_rng(0)).classifier_factors
    b = als.fit(flipped, s, np.random.default_rng(0)).classifier_factors
    assert not np.allclose(a, b, rtol=1e-3)


@settings(max_examples=25, deadline=None)
@given(R=arrays(np.float64, (12, 3), elements=st.floats(0, 1)), d=st.integers(1, 4))
def test_fold_in_of_any_probabilities_is_finite(R, d):
    X = np.random.default_rng(0).standard_normal((3, d))
    Y = fold_in(R, certainty(R, 2), X, 0.1, 0.5)
    assert Y.shape == (12, d) and np.all(np.isfinite(Y))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("rows_per_block", [1, 7, 64, 1000])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_sweep_in_row_blocks_equals_the_whole_matrix_sweep(n_classes, rows_per_block, n_threads):
    """Streaming rows (surrogate weights, instance factors, classifier normal
    equations and the balancing QR by blocks) changes nothing but rounding."""
    problem = make_problem(n_classes=n_classes, labeled_fraction=0.7)
    weights = als.SurrogateWeights(problem, 0.5)
    V, share = als.factor_weights(problem, 0.5)
    X = als.initial_factors(problem.R, problem.row_weight, 3, np.random.default_rng(0))
    expected = als.balance(*als.factor_sweep(problem.R, V, share, X, 0.1), share)
    for V_like in (weights, V):
        X_blocks = als.balanced_sweep(problem.R, V_like, share, X, 0.1,
                                      rows_per_block=rows_per_block, n_threads=n_threads)
        np.testing.assert_allclose(X_blocks, expected, rtol=1e-10, atol=1e-12)


def test_surrogate_weights_of_any_rows_are_those_rows_of_the_whole():
    problem = make_problem(n_classes=3, labeled_fraction=0.6)
    weights = als.SurrogateWeights(problem, 0.3)
    V, _ = als.factor_weights(problem, 0.3)
    np.testing.assert_array_equal(weights[17:90], V[17:90])


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("aggregator", ["weighted", "mean"])
@pytest.mark.parametrize("blocks", ["sweep", "reduction"])
def test_fit_in_row_blocks_equals_the_fit_in_one_block(monkeypatch, n_classes, aggregator,
                                                       blocks):
    """Blocks of 8 rows against a single block: the same model to 1e-9.

    'sweep': the ALS sweep's row blocks, in 2 threads; 'reduction': the
    confidence totals', the initial Gram matrix's and the aggregator's.
    """
    problem = make_problem(n=300, n_classes=n_classes, labeled_fraction=0.7)
    settings = make_settings(aggregator=aggregator, max_iter=5, tol=0.0)
    whole = als.fit(problem, settings, np.random.default_rng(0))
    if blocks == "sweep":
        monkeypatch.setattr(als, "BLOCK_ENTRIES", 8 * 3 * 3)
        monkeypatch.setattr(als, "blas_threads", lambda: 2)
    else:
        monkeypatch.setattr(_threads, "REDUCTION_ENTRIES", 16)
        monkeypatch.setattr(_threads, "REDUCTION_MIN_ROWS", 8)
    fitted = als.fit(problem, settings, np.random.default_rng(0))
    np.testing.assert_allclose(fitted.classifier_factors, whole.classifier_factors, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(fitted.coef, whole.coef, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fitted.intercept, whole.intercept, rtol=1e-9, atol=1e-11)
    for key in whole.history:
        np.testing.assert_allclose(fitted.history[key], whole.history[key], rtol=1e-10)


def test_binary_label_targets_are_one_column_repeated():
    y = np.array([1, 0, 1, 1])
    labeled = np.array([True, True, False, True])
    T = label_targets(y, 2, 3, labeled)
    np.testing.assert_array_equal(T, label_targets(y, 2, 3) * labeled[:, None])
    assert T.strides[1] == 0 and not T.flags.writeable
    np.testing.assert_array_equal(label_targets(y, 3, 2, labeled), label_targets(y, 3, 2) * labeled[:, None])
