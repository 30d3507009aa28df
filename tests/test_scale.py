"""The level-1 step at scale: the selection on a stratified subsample of the labeled rows
(issue 23) and the average precision's sort."""

import numpy as np
import pytest
from scipy.special import expit

import skcfe.level1
from skcfe import CFEnsembleClassifier
from skcfe.level1 import selection
from skcfe.level1.selection import average_precision, binned_average_precision, selection_rows


def _average_precision_stable(y, proba, sample_weight):
    """The former implementation: always the stable sort."""
    score = proba[:, 1]
    order = np.argsort(-score, kind="mergesort")
    tps = np.cumsum((y[order] == 1) * sample_weight[order])
    total = np.cumsum(sample_weight[order])
    last = np.r_[np.flatnonzero(np.diff(score[order])), len(score) - 1]
    tps, total = tps[last], total[last]
    if tps[-1] <= 0:
        return 0.0
    precision = np.divide(tps, total, out=np.zeros_like(tps), where=total > 0)
    return float(np.dot(np.diff(tps, prepend=0.0) / tps[-1], precision))


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_is_the_stable_sorts_to_the_bit(ties):
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.1).astype(int)
    score = rng.random(5000)
    if ties:
        score = np.round(score, 2)
    proba = np.column_stack([1 - score, score])
    for w in (np.ones(5000), rng.random(5000) + 0.5):
        assert average_precision(y, proba, w) == _average_precision_stable(y, proba, w)


def test_binned_average_precision():
    rng = np.random.default_rng(1)
    y = (rng.random(20000) < 0.1).astype(int)
    w = rng.random(20000) + 0.5
    score = np.clip(0.3 * y + rng.random(20000) * 0.7, 0, 1)
    proba = np.column_stack([1 - score, score])
    assert binned_average_precision(y, proba, w) == pytest.approx(
        average_precision(y, proba, w), abs=1e-4)
    on_grid = np.floor(score * 2**16) / 2**16  # scores on the bins' grid: the exact value
    proba = np.column_stack([1 - on_grid, on_grid])
    assert binned_average_precision(y, proba, w) == pytest.approx(
        average_precision(y, proba, w), rel=1e-12)
    assert binned_average_precision(np.zeros(5, int), proba[:5], w[:5]) == 0.0


def test_selection_rows_is_none_up_to_the_threshold():
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    labeled = np.ones(100, bool)
    assert selection_rows(y, labeled, 2, seed=0, max_rows=100) is None
    assert selection_rows(y, labeled, 2, seed=0, max_rows=1000) is None
    rows = selection_rows(y, labeled, 2, seed=0, max_rows=50)
    assert len(rows) == 50 and np.all(np.diff(rows) > 0)
    assert np.bincount(y[rows]).tolist() == [45, 5]  # stratified
    np.testing.assert_array_equal(rows, selection_rows(y, labeled, 2, seed=0, max_rows=50))
    assert not np.array_equal(rows, selection_rows(y, labeled, 2, seed=1, max_rows=50))


def test_selection_rows_keeps_small_classes_and_samples_unlabeled_rows():
    y = np.r_[np.zeros(1000, int), np.ones(6, int), np.zeros(400, int)]
    labeled = np.r_[np.ones(1006, bool), np.zeros(400, bool)]
    rows = selection_rows(y, labeled, 2, seed=0, min_per_class=5, max_rows=100)
    assert (y[rows][labeled[rows]] == 1).sum() == 5  # round(0.6) = 1, raised to 5
    assert (~labeled[rows]).sum() == round(400 * 100 / 1006)


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    mu = 2.5 * (y - 0.5) + rng.standard_normal(n)
    R = expit(rng.uniform(0.5, 2, 4) * (mu[:, None] + rng.standard_normal((n, 4))))
    return R, y


@pytest.fixture
def spy(monkeypatch):
    """The number of rows each call of the selection saw."""
    seen = []
    select = skcfe.level1.select

    def recording(R, *args, **kwargs):
        seen.append(len(R))
        return select(R, *args, **kwargs)

    monkeypatch.setattr(skcfe.level1, "select", recording)
    return seen


def test_subsample_only_above_the_threshold(monkeypatch, spy):
    R, y = _data()
    monkeypatch.setattr(selection, "SELECTION_MAX_ROWS", len(y))
    full = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    monkeypatch.setattr(selection, "SELECTION_MAX_ROWS", len(y) - 1)
    sub = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    assert spy == [len(y), len(y) - 1]
    # the configured CF aggregator is the same fit on every row either way
    np.testing.assert_array_equal(full.coef_, sub.coef_)


@pytest.mark.parametrize("every_row", [False, True])
@pytest.mark.parametrize("combiner", ["auto", "select"])
def test_subsample_path_runs_and_is_deterministic(monkeypatch, spy, every_row, combiner):
    R, y = _data()
    monkeypatch.setattr(selection, "SELECTION_MAX_ROWS", 200)
    monkeypatch.setattr(skcfe.level1, "REFIT_EVERY_ROW", every_row)
    fits = [CFEnsembleClassifier("precomputed", combiner=combiner, random_state=0).fit(R, y)
            for _ in range(2)]
    assert spy == [200, 200]
    P = [fit.predict_proba(R) for fit in fits]
    np.testing.assert_array_equal(P[0], P[1])
    assert np.all(np.isfinite(P[0])) and np.allclose(P[0].sum(axis=1), 1)
    results = [fit.selection_results_ for fit in fits]
    np.testing.assert_array_equal(results[0]["pooled_test_score"],
                                  results[1]["pooled_test_score"])


def test_subsample_path_with_missing_and_unlabeled_rows(monkeypatch, spy):
    R, y = _data(800, seed=1)
    R[np.random.default_rng(0).random(R.shape) < 0.2] = np.nan
    R[np.isnan(R).all(axis=1), 0] = 0.5
    y[::4] = -1
    monkeypatch.setattr(selection, "SELECTION_MAX_ROWS", 300)
    clf = CFEnsembleClassifier("precomputed", random_state=0, unlabeled_label=-1).fit(R, y)
    assert len(spy) == 1 and abs(spy[0] - 400) <= 2  # ~300 of 600 labeled, 100 of 200 unlabeled
    assert np.all(np.isfinite(clf.predict_proba(R)))


def test_subsample_path_with_groups_weights_and_classes(monkeypatch, spy):
    rng = np.random.default_rng(2)
    y = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    R = np.hstack([np.eye(3)[y] * 0.5 + rng.dirichlet(np.ones(3), 600) * 0.5 for _ in range(3)])
    groups = np.arange(600) % 40
    weights = rng.random(600) + 0.5
    monkeypatch.setattr(selection, "SELECTION_MAX_ROWS", 250)
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y, sample_weight=weights,
                                                                  groups=groups)
    assert len(spy) == 1 and abs(spy[0] - 250) <= 2
    P = clf.predict_proba(R)
    assert P.shape == (600, 3) and np.allclose(P.sum(axis=1), 1)
