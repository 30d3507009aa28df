"""The level-1 step at scale: the selection's holdout beyond SELECTION_MAX_ROWS labeled rows
(issue 23) and the average precision's sort."""

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

import skcfe.level1
from skcfe import CFEnsembleClassifier
from skcfe.level1 import selection
from skcfe.level1.selection import average_precision, binned_average_precision, holdout_rows


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


def test_holdout_rows_is_none_up_to_the_threshold_and_stratified():
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    labeled = np.ones(1000, bool)
    assert holdout_rows(y, labeled, 2, seed=0, max_rows=1000) is None
    fit, score = holdout_rows(y, labeled, 2, seed=0, max_rows=999, fit_rows=200, score_rows=300)
    assert len(fit) == 200 and len(score) == 300
    assert np.all(np.diff(fit) > 0) and np.all(np.diff(score) > 0)
    assert not np.isin(fit, score).any()
    assert np.bincount(y[fit]).tolist() == [180, 20]  # stratified
    assert np.bincount(y[score]).tolist() == [270, 30]
    again = holdout_rows(y, labeled, 2, seed=0, max_rows=999, fit_rows=200, score_rows=300)
    np.testing.assert_array_equal(fit, again[0])
    other = holdout_rows(y, labeled, 2, seed=1, max_rows=999, fit_rows=200, score_rows=300)
    assert not np.array_equal(fit, other[0])


def test_holdout_rows_keeps_small_classes_on_both_sides_and_samples_unlabeled_rows():
    y = np.r_[np.zeros(1000, int), np.ones(2, int), np.zeros(400, int)]
    labeled = np.r_[np.ones(1002, bool), np.zeros(400, bool)]
    fit, score = holdout_rows(y, labeled, 2, seed=0, max_rows=100, fit_rows=100,
                              score_rows=10_000)
    assert (y[fit][labeled[fit]] == 1).sum() == 1 and (y[score] == 1).sum() == 1
    assert labeled[score].all() and len(score) == 1002 - labeled[fit].sum()
    assert (~labeled[fit]).sum() == round(labeled[fit].sum() / 1002 * 400)


def test_holdout_rows_by_groups_never_splits_a_group():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, 3000)
    y = (rng.random(3000) < 0.05).astype(int)
    labeled = np.ones(3000, bool)
    fit, score = holdout_rows(y, labeled, 2, seed=0, groups=groups, max_rows=100,
                              fit_rows=500, score_rows=1000)
    assert not np.isin(groups[fit], groups[score]).any()
    assert 500 <= len(fit) < 600 and len(score) == 1000
    assert set(y[fit]) == set(y[score]) == {0, 1}
    # a class in a single group cannot be both fitted on and scored
    y_one = np.where(groups == groups[0], 1, 0)
    assert holdout_rows(y_one, labeled, 2, seed=0, groups=groups, max_rows=100,
                        fit_rows=500) is None


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


def _holdout(monkeypatch, max_rows, fit_rows, score_rows):
    monkeypatch.setattr(selection, "SELECTION_MAX_ROWS", max_rows)
    monkeypatch.setattr(selection, "HOLDOUT_FIT_ROWS", fit_rows)
    monkeypatch.setattr(selection, "HOLDOUT_SCORE_ROWS", score_rows)


def test_holdout_only_above_the_threshold(monkeypatch, spy):
    R, y = _data()
    _holdout(monkeypatch, len(y), 200, 300)
    full = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    assert "split4_test_score" in full.selection_results_
    _holdout(monkeypatch, len(y) - 1, 200, 300)
    sub = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    assert spy == [len(y), 500]
    results = sub.selection_results_
    assert "split1_test_score" not in results and "estimators" not in results
    np.testing.assert_array_equal(results["pooled_test_score"], results["split0_test_score"])
    # the configured CF aggregator is the same fit on every row either way
    np.testing.assert_array_equal(full.coef_, sub.coef_)


@pytest.mark.parametrize("combiner", ["auto", "select"])
def test_holdout_path_uses_the_holdout_fits_and_is_deterministic(monkeypatch, spy, combiner):
    R, y = _data()
    _holdout(monkeypatch, 200, 200, 300)
    fits = [CFEnsembleClassifier("precomputed", combiner=combiner, random_state=0).fit(R, y)
            for _ in range(2)]
    assert spy == [500, 500]
    P = [fit.predict_proba(R) for fit in fits]
    np.testing.assert_array_equal(P[0], P[1])
    assert np.all(np.isfinite(P[0])) and np.allclose(P[0].sum(axis=1), 1)
    results = [fit.selection_results_ for fit in fits]
    np.testing.assert_array_equal(results[0]["pooled_test_score"],
                                  results[1]["pooled_test_score"])


class _CountingLR(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        self.n_rows_ = len(X)
        return super().fit(X, y, sample_weight=sample_weight)


def test_holdout_path_keeps_the_holdout_fits(monkeypatch):
    R, y = _data()
    _holdout(monkeypatch, 200, 200, 300)
    clf = CFEnsembleClassifier("precomputed", combiner=[("lr", _CountingLR())],
                               random_state=0).fit(R, y)
    (member,) = clf.combiner_estimator_.members
    assert member.estimator_.n_rows_ == 200  # not refitted on the 600 rows
    _holdout(monkeypatch, 600, 200, 300)
    clf = CFEnsembleClassifier("precomputed", combiner=[("lr", _CountingLR())],
                               random_state=0).fit(R, y)
    assert clf.combiner_estimator_.members[0].estimator_.n_rows_ == 600


def test_holdout_path_with_missing_and_unlabeled_rows(monkeypatch, spy):
    R, y = _data(800, seed=1)
    R[np.random.default_rng(0).random(R.shape) < 0.2] = np.nan
    R[np.isnan(R).all(axis=1), 0] = 0.5
    y[::4] = -1
    _holdout(monkeypatch, 300, 200, 250)
    clf = CFEnsembleClassifier("precomputed", random_state=0, unlabeled_label=-1).fit(R, y)
    # 200 of 600 labeled rows and a third of the 200 unlabeled ones fitted on, 250 scored
    assert len(spy) == 1 and abs(spy[0] - (200 + 67 + 250)) <= 2
    assert np.all(np.isfinite(clf.predict_proba(R)))


def test_holdout_path_with_groups_weights_and_classes(monkeypatch, spy):
    rng = np.random.default_rng(2)
    y = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    R = np.hstack([np.eye(3)[y] * 0.5 + rng.dirichlet(np.ones(3), 600) * 0.5 for _ in range(3)])
    groups = np.arange(600) % 40
    weights = rng.random(600) + 0.5
    _holdout(monkeypatch, 250, 150, 200)
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y, sample_weight=weights,
                                                                  groups=groups)
    assert len(spy) == 1 and 350 <= spy[0] <= 380  # whole groups of 15 rows to 150, 200 scored
    P = clf.predict_proba(R)
    assert P.shape == (600, 3) and np.allclose(P.sum(axis=1), 1)


def test_holdout_by_groups_warns_when_a_class_is_in_one_group(monkeypatch):
    R, y = _data()
    groups = np.where(y == 1, 0, 1 + np.arange(len(y)) % 20)
    _holdout(monkeypatch, 200, 200, 300)
    with pytest.warns(UserWarning, match="single group"):
        clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y, groups=groups)
    assert clf.combiner_ == "cf" and clf.selection_results_ is None
