"""Fits that stream over row blocks: confidence by rows, the aggregator's sums by blocks.

A fit computes the confidence of R's rows where it needs them
(:class:`~skcfe._confidence.RowConfidence`) and sums the aggregator's loss,
gradient and Hessian over row blocks of its input, so that it holds no
(n, q) array but R and the aggregator's input. These tests check that
nothing but rounding changes: by rows the confidence is bit for bit the
whole array's, one block is exactly the whole matrix, and many small blocks
agree with one to ~1e-12.
"""

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skcfe import CFEnsembleClassifier, _aggregator, _threads
from skcfe._aggregator import _hessian, fit_weighted, raw_scores, supervised_loss
from skcfe._cf import CF_PARAMETERS, fit_cf
from skcfe._confidence import (
    CONFIDENCE_STRATEGIES,
    RowConfidence,
    apply_confidence,
    fit_confidence,
    label_targets,
    weighted_total,
)
from skcfe._losses import _focal_terms
from skcfe.backends import als, get_backend

from .test_als import make_problem, make_settings


@pytest.fixture
def small_blocks(monkeypatch):
    """Reductions by blocks of 8 to 40 rows: many blocks on any test matrix."""
    monkeypatch.setattr(_threads, "REDUCTION_ENTRIES", 40)
    monkeypatch.setattr(_threads, "REDUCTION_MIN_ROWS", 8)


def probabilities(n, n_classes, m, seed, missing=0.0):
    """A probability matrix in skcfe's column layout, NaN marking missing predictions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    if n_classes == 2:
        R = np.clip(0.5 + (y[:, None] - 0.5) * rng.uniform(0.1, 0.8, (n, m))
                    + 0.2 * rng.standard_normal((n, m)), 0, 1)
    else:
        logits = 2.0 * (y[:, None, None] == np.arange(n_classes)) + rng.standard_normal((n, m, n_classes))
        R = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).reshape(n, -1)
    if missing:
        width = 1 if n_classes == 2 else n_classes
        gone = rng.random((n, m)) < missing
        gone[:, 0] = False  # every row keeps a prediction
        R[np.repeat(gone, width, axis=1)] = np.nan
    return R, y


def cf_params(**overrides):
    params = {name: getattr(CFEnsembleClassifier(), name) for name in CF_PARAMETERS}
    params.update(overrides)
    return params


# -- confidence by rows ------------------------------------------------------


@pytest.mark.parametrize("strategy", CONFIDENCE_STRATEGIES)
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_confidence_by_rows_is_the_whole_arrays_bit_for_bit(strategy, n_classes, missing):
    """Training and label-free confidence, any rows, partly labeled, NaN-masked:
    the rows of what fit_cf held before (the whole array, times the mask)."""
    R, y = probabilities(150, n_classes, 4, seed=1, missing=missing)
    observed = ~np.isnan(R)
    R = np.where(observed, R, 0.5)
    labeled = np.random.default_rng(2).random(150) < 0.7
    labeled[:n_classes] = True
    T = label_targets(y, n_classes, 4, labeled)
    w = np.random.default_rng(3).uniform(0.5, 2.0, 150)
    kw = dict(n_classes=n_classes, label_aware_alpha=1.5, observed=observed)
    C_whole, state = fit_confidence(strategy, R, T, labeled, w, **kw)
    C_whole = C_whole * observed
    C_free_whole = apply_confidence(state, R) * observed
    C_rows, state_rows = fit_confidence(strategy, R, T, labeled, w, **kw, by_rows=True)
    C_free_rows = RowConfidence(state_rows, R, observed=observed)
    assert isinstance(C_rows, RowConfidence) and C_rows.shape == R.shape
    np.testing.assert_array_equal(np.asarray(C_rows), C_whole)
    np.testing.assert_array_equal(np.asarray(C_free_rows), C_free_whole)
    for rows in (slice(0, 1), slice(17, 90), slice(140, 400), np.array([5, 3, 149]), labeled):
        np.testing.assert_array_equal(C_rows[rows], C_whole[rows])
        np.testing.assert_array_equal(C_free_rows[rows], C_free_whole[rows])
    np.testing.assert_array_equal(C_rows[10:20, 1:3], C_whole[10:20, 1:3])
    if strategy == "label_aware":
        assert not np.array_equal(C_whole, C_free_whole)
    else:
        np.testing.assert_array_equal(C_whole, C_free_whole)


@settings(max_examples=40, deadline=None)
@given(
    R=arrays(np.float64, (13, 6), elements=st.floats(0, 1)),
    strategy=st.sampled_from(CONFIDENCE_STRATEGIES),
    n_classes=st.sampled_from([2, 3]),
    start=st.integers(0, 13), stop=st.integers(0, 13),
    labeled=arrays(np.bool_, 13),
)
def test_any_rows_of_the_row_confidence_are_those_rows_of_the_whole(
    R, strategy, n_classes, start, stop, labeled
):
    labeled[0] = True
    y = np.arange(13) % n_classes
    T = label_targets(y, n_classes, 6 if n_classes == 2 else 2, labeled)
    kw = dict(n_classes=n_classes, label_aware_alpha=1.0)
    C_whole, _ = fit_confidence(strategy, R, T, labeled, np.ones(13), **kw)
    C_rows, _ = fit_confidence(strategy, R, T, labeled, np.ones(13), **kw, by_rows=True)
    np.testing.assert_array_equal(C_rows[start:stop], C_whole[start:stop])


def test_a_confidence_callable_is_called_once_on_the_whole_matrix():
    """It may use column statistics, so it is never applied by rows; fit_cf holds its result."""
    R, y = probabilities(80, 2, 5, seed=0, missing=0.2)
    seen = []

    def by_column_rank(P):
        seen.append(P.shape)
        return P.argsort(axis=0).argsort(axis=0) / len(P) + 0.1

    n = len(y)
    model, problem = fit_cf(R, y, np.ones(n, bool), np.ones(n), n_classes=2,
                            params=cf_params(confidence=by_column_rank), seed=0)
    assert seen == [R.shape]
    assert isinstance(problem.C, np.ndarray) and problem.C_free is problem.C
    np.testing.assert_array_equal(problem.C[np.isnan(R)], 0.0)
    model_named, problem_named = fit_cf(R, y, np.ones(n, bool), np.ones(n), n_classes=2,
                                        params=cf_params(confidence="label_aware"), seed=0)
    assert isinstance(problem_named.C, RowConfidence)
    assert isinstance(problem_named.C_free, RowConfidence)
    np.testing.assert_array_equal(problem_named.C[np.isnan(R).any(axis=1)] > 0,
                                  ~np.isnan(R[np.isnan(R).any(axis=1)]))


@pytest.mark.parametrize("strategy", CONFIDENCE_STRATEGIES)
def test_confidence_totals_by_blocks(strategy, small_blocks, monkeypatch):
    """Many blocks: the total confidence to rounding; calibration's column weights too."""
    R, y = probabilities(101, 3, 4, seed=4, missing=0.2)
    observed = ~np.isnan(R)
    R = np.where(observed, R, 0.5)
    labeled = np.arange(101) % 4 != 0
    T = label_targets(y, 3, 4, labeled)
    w = np.random.default_rng(5).uniform(0.5, 2.0, 101)
    kw = dict(n_classes=3, label_aware_alpha=1.0, observed=observed)
    C_rows, state = fit_confidence(strategy, R, T, labeled, w, **kw, by_rows=True)
    C = np.asarray(C_rows)
    expected = np.dot(w, C.sum(axis=1))
    assert weighted_total(C_rows, w) == pytest.approx(expected, rel=1e-13)
    assert weighted_total(C, w) == pytest.approx(expected, rel=1e-13)
    if strategy == "calibration":
        monkeypatch.undo()  # the whole matrix in one block: the reference
        C_one, state_one = fit_confidence(strategy, R, T, labeled, w, **kw, by_rows=True)
        np.testing.assert_allclose(state["column_weights"], state_one["column_weights"],
                                   rtol=1e-13)
        weights = w[labeled][:, None] * observed[labeled]
        brier = (weights * (T[labeled] - R[labeled]) ** 2).sum(axis=0) / weights.sum(axis=0)
        np.testing.assert_allclose(state_one["column_weights"], 0.05 + 0.95 * (1 - brier),
                                   rtol=1e-13)


def test_one_block_gives_the_whole_matrix_sums_exactly():
    problem = make_problem(n=500, n_classes=3)
    w = problem.row_weight
    assert weighted_total(problem.C, w) == np.dot(w, problem.C.sum(axis=1))
    R = problem.R
    X = als.initial_factors(R, w, 3, np.random.default_rng(0))
    gram = R.T @ (R * (w / w.sum())[:, None])
    values, vectors = np.linalg.eigh(gram)
    np.testing.assert_array_equal(np.abs(X[:, 0]), np.abs(vectors[:, -1]) * values[-1] ** 0.25)


def test_initial_factors_by_blocks(small_blocks, monkeypatch):
    problem = make_problem(n=300, n_classes=3)
    blocks = als.initial_factors(problem.R, problem.row_weight, 4, np.random.default_rng(0))
    monkeypatch.undo()
    whole = als.initial_factors(problem.R, problem.row_weight, 4, np.random.default_rng(0))
    np.testing.assert_allclose(blocks, whole, rtol=1e-10, atol=1e-13)


# -- the aggregator by blocks ------------------------------------------------


def aggregator_data(n_classes, n=400, q=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    F = rng.random((n, q)) + 0.5 * (y[:, None] == np.arange(q) % n_classes)
    return F, y, rng.uniform(0.2, 3.0, n)


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("newton_steps", [None, 2])
def test_aggregator_in_many_blocks_equals_one_block(n_classes, gamma, newton_steps, monkeypatch):
    """Newton, and L-BFGS where it takes over, over blocks of 8 rows (with Hessian
    blocks of 4, in 2 threads) against the whole matrix in one block."""
    F, y, w = aggregator_data(n_classes)
    k = 1 if n_classes == 2 else n_classes
    start = (np.zeros((k, F.shape[1])), np.zeros(k))
    kw = dict(gamma=gamma, alpha=1e-3, newton_steps=newton_steps, warm_start=True)
    whole = fit_weighted(F, y, w, *start, **kw)
    monkeypatch.setattr(_threads, "REDUCTION_ENTRIES", 8)
    monkeypatch.setattr(_threads, "REDUCTION_MIN_ROWS", 8)
    monkeypatch.setattr(_aggregator, "BLOCK_ENTRIES", 4 * max(F.shape[1] + 1, k * k))
    monkeypatch.setattr(_aggregator, "blas_threads", lambda: 2)
    design = _aggregator._Design(F, y, w, k)
    assert len(design.blocks) == 50 and design.hessian_rows == 4
    blocks = fit_weighted(F, y, w, *start, **kw)
    # Solved to convergence, the weights are set by the exact gradient; two
    # steps of the focal loss's Newton also carry its Hessian's rounding, which
    # central differences (h = 1e-5) amplify about 1e5 times.
    tol = 1e-9 if gamma > 0 and newton_steps else 1e-12
    for a, b in zip(blocks, whole):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_lbfgs_aggregator_in_many_blocks_equals_one_block(gamma, small_blocks, monkeypatch):
    """Above 1500 weights L-BFGS alone: its Gram matrix, loss and gradient by blocks."""
    F, y, w = aggregator_data(10, n=300, q=150, seed=1)
    start = (np.zeros((10, 150)), np.zeros(10))
    kw = dict(gamma=gamma, alpha=1e-2, warm_start=True, max_iter=50)
    blocks = fit_weighted(F, y, w, *start, **kw)
    monkeypatch.undo()
    whole = fit_weighted(F, y, w, *start, **kw)
    for a, b in zip(blocks, whole):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_hessian_streamed_in_chunks_is_the_whole_sum_bit_for_bit():
    """Chunks of a multiple of the Hessian's row blocks, added to ``start`` in order:
    exactly the sum over the whole (the same additions in the same order)."""
    rng = np.random.default_rng(0)
    F1 = rng.standard_normal((103, 5))
    A = rng.standard_normal((103, 2, 2))
    hess = A @ A.transpose(0, 2, 1)
    whole = _hessian(F1, hess, 7, 2)
    H = 0
    for start in range(0, 103, 21):
        rows = slice(start, start + 21)
        H = _hessian(F1[rows], hess[rows], 7, 2, H)
    np.testing.assert_array_equal(H, whole)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_supervised_loss_of_row_blocks_of_features(n_classes, small_blocks):
    F, y, w = aggregator_data(n_classes, n=97)
    k = 1 if n_classes == 2 else n_classes
    rng = np.random.default_rng(1)
    coef, intercept = rng.standard_normal((k, F.shape[1])), rng.standard_normal(k)
    raw = raw_scores(F, coef, intercept)
    expected = np.dot(w, _focal_terms(y, raw, 2.0)[0]) / w.sum()
    assert supervised_loss(raw, y, w, 2.0) == pytest.approx(expected, rel=1e-13)
    by_rows = supervised_loss(lambda rows: raw_scores(F[rows], coef, intercept), y, w, 2.0,
                              width=F.shape[1])
    assert by_rows == pytest.approx(expected, rel=1e-13)


# -- whole fits --------------------------------------------------------------


@pytest.mark.parametrize("backend", ["als", "torch"])
@pytest.mark.parametrize("strategy", ["certainty", "label_aware"])
def test_backends_give_the_same_model_for_row_confidence_and_arrays(backend, strategy):
    """A Problem with RowConfidence (as fit_cf builds it) against the same Problem with
    the whole arrays: the same model bit for bit (torch materializes them)."""
    if backend == "torch":
        pytest.importorskip("torch")
    R, y = probabilities(120, 3, 3, seed=7, missing=0.2)
    n = len(y)
    labeled = np.arange(n) % 5 != 0
    params = cf_params(confidence=strategy, backend=backend, max_iter=5)
    _, problem = fit_cf(R, y, labeled, np.ones(n), n_classes=3, params=params, seed=0)
    assert isinstance(problem.C, RowConfidence)
    arrays_problem = replace(problem, C=np.asarray(problem.C),
                             C_free=np.asarray(problem.C_free))
    assert problem.materialized().confidence_scale == problem.confidence_scale
    settings = make_settings(latent_dim=3, max_iter=5)
    a = get_backend(backend).fit(problem, settings, np.random.default_rng(0))
    b = get_backend(backend).fit(arrays_problem, settings, np.random.default_rng(0))
    for name in ("classifier_factors", "coef", "intercept"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_als_fit_holds_little_beyond_R_and_the_aggregator_input(monkeypatch):
    """The memory goal at n = 1e7 (a peak under 3x R, R included), here at n = 60,000
    with blocks shrunk in proportion: beyond R, the fit's peak is the aggregator's
    input (1x R), a few vectors of length n (0.1x R each) and its blocks. Holding the
    confidence, a copy of the aggregator's input or its temporaries of all rows (as
    it once did: 5.2x R) fails this."""
    monkeypatch.setattr(_threads, "REDUCTION_ENTRIES", 1 << 13)
    monkeypatch.setattr(_threads, "REDUCTION_MIN_ROWS", 1 << 9)
    monkeypatch.setattr(als, "BLOCK_ENTRIES", 1 << 15)
    monkeypatch.setattr(_aggregator, "BLOCK_ENTRIES", 1 << 12)
    R, y = probabilities(60_000, 2, 10, seed=0)
    n = len(y)
    labeled, weights = np.ones(n, bool), np.ones(n)
    params = cf_params(max_iter=3, focal_gamma=2.0)
    tracemalloc.start()
    try:
        fit_cf(R, y, labeled, weights, n_classes=2, params=params, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / R.nbytes < 1.6
