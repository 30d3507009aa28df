"""fit_combiner: which level-1 model predicts, called directly on a probability matrix."""

import numpy as np
import pytest
from scipy.special import expit

from skcfe import CFEnsembleClassifier
from skcfe._cf import fit_cf
from skcfe._combiner import Completed, FittedCF, fit_combiner, n_inner_splits
from skcfe._selection import SuperLearner


def _problem(n=400, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    R = expit((2 * y - 1)[:, None] * np.array([1.2, 0.6, 0.2]) + rng.normal(0, 1.0, (n, 3)))
    R[rng.random((n, 3)) < missing] = np.nan
    return R, y


def _fit(R, y, combiner, **kwargs):
    labeled, w = np.ones(len(y), dtype=bool), np.ones(len(y))
    params = CFEnsembleClassifier(latent_dim=2).get_params()
    model, _ = fit_cf(R, y, labeled, w, n_classes=2, params=params, seed=0)
    return model, fit_combiner(R, y, labeled, w, combiner=combiner, names=["a", "b", "c"],
                               n_classes=2, cf_model=model, cf_params=params, seed=0, **kwargs)


def test_forced_cf_runs_no_selection():
    R, y = _problem()
    model, (name, estimator, results, completion) = _fit(R, y, "cf")
    assert (name, results, completion) == ("cf", None, None)
    assert estimator is model


def test_too_few_labeled_rows_of_a_class_fall_back_to_cf():
    R, y = _problem()
    y = np.zeros_like(y)
    y[0] = 1  # one positive: no stratified two-fold split exists
    assert n_inner_splits(y, np.ones(len(y), dtype=bool), 2, 5) == 1
    model, (name, estimator, results, _) = _fit(R, y, "auto")
    assert (name, results) == ("cf", None)
    assert estimator is model


def test_select_refits_the_best_candidate():
    R, y = _problem()
    model, (name, estimator, results, _) = _fit(R, y, "select")
    best = int(np.argmax(results["pooled_test_score"]))
    assert name == results["candidate"][best]
    assert "weight" not in results
    if best == 0:
        assert estimator is model
    else:
        proba = estimator.predict_proba(R)
        assert proba.shape == (len(y), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_auto_pools_with_the_cf_model_already_fitted():
    R, y = _problem()
    model, (name, estimator, results, _) = _fit(R, y, "auto")
    assert name == "super_learner" and isinstance(estimator, SuperLearner)
    weight = results["weight"]
    np.testing.assert_array_equal(estimator.weights, weight[weight > 0])
    for c, member in zip(np.flatnonzero(weight > 0), estimator.members):
        # the configured CF model enters as fitted, not fitted again
        assert isinstance(member, FittedCF) == (c == 0)
        assert c != 0 or member.model is model


def test_missing_predictions_fit_a_completion_for_the_candidates_that_need_it():
    R, y = _problem(missing=0.05)
    _, (name, estimator, results, completion) = _fit(R, y, "auto")
    assert name == "super_learner" and completion is not None
    assert "missing_indicators" in results["candidate"]
    needs_completion = {"stacking", "nonneg_logit", "greedy", "single:a", "single:b", "single:c"}
    members = dict(zip(np.array(results["candidate"])[results["weight"] > 0], estimator.members))
    for member_name, member in members.items():
        assert isinstance(member, Completed) == (member_name in needs_completion)
    # this problem's pool holds both kinds
    assert {type(member) for member in members.values()} >= {Completed, FittedCF}
    proba = estimator.predict_proba(R)
    assert np.all(np.isfinite(proba))


@pytest.mark.parametrize("groups_per_class", [1, 3])
def test_groups_bound_the_number_of_inner_folds(groups_per_class):
    y = np.repeat([0, 1], 30)
    groups = np.concatenate([np.arange(30) % groups_per_class,
                             100 + np.arange(30) % groups_per_class])
    labeled = np.ones(60, dtype=bool)
    assert n_inner_splits(y, labeled, 2, 5, groups) == min(5, 2 * groups_per_class)
