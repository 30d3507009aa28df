"""fit_level1 (skcfe/level1/__init__.py): which level-1 model predicts, and the open combiner."""

import matplotlib
import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from skcfe import CFEnsembleClassifier, SelectionDisplay
from skcfe._cf import fit_cf
from skcfe.level1 import (
    CFCandidate,
    Completed,
    EstimatorCandidate,
    Level1Context,
    SuperLearner,
    default_candidates,
    fit_level1,
)
from skcfe.level1.selection import average_precision, n_inner_splits

matplotlib.use("Agg")

E = [("lr", LogisticRegression()), ("nb", GaussianNB()),
     ("dt", DecisionTreeClassifier(max_depth=3, random_state=0))]


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
    context = Level1Context(n_classes=2, names=("a", "b", "c"), cf_params=params, seed=0,
                            scorer=average_precision)
    return model, fit_level1(combiner, R, y, labeled, w, context, cf_model=model, **kwargs)


def test_forced_cf_runs_no_selection():
    R, y = _problem()
    model, fitted = _fit(R, y, "cf")
    assert (fitted.name, fitted.results) == ("cf", None)
    assert isinstance(fitted.model, CFCandidate) and fitted.model.model_ is model


def test_too_few_labeled_rows_of_a_class_fall_back_to_cf():
    R, y = _problem()
    y = np.zeros_like(y)
    y[0] = 1  # one positive: no stratified two-fold split exists
    assert n_inner_splits(y, np.ones(len(y), dtype=bool), 2, 5) == 1
    model, fitted = _fit(R, y, "auto")
    assert (fitted.name, fitted.results) == ("cf", None)
    assert fitted.model.model_ is model


def test_select_refits_the_best_candidate():
    R, y = _problem()
    model, fitted = _fit(R, y, "select")
    results = fitted.results
    best = int(np.argmax(results["pooled_test_score"]))
    assert fitted.name == results["candidate"][best]
    assert "weight" not in results
    proba = fitted.model.predict_proba(R)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_auto_pools_with_the_cf_model_already_fitted():
    R, y = _problem()
    model, fitted = _fit(R, y, "auto")
    assert fitted.name == "super_learner" and isinstance(fitted.model, SuperLearner)
    weight = fitted.results["weight"]
    np.testing.assert_array_equal(fitted.model.weights, weight[weight > 0])
    assert weight[0] > 0
    for c, member in zip(np.flatnonzero(weight > 0), fitted.model.members):
        # the configured CF model enters as fitted, not fitted again
        assert (getattr(member, "model_", None) is model) == (c == 0)


def test_auto_is_the_pool_over_the_default_candidates_given_as_a_list():
    R, y = _problem()
    _, auto = _fit(R, y, "auto")
    _, listed = _fit(R, y, default_candidates(["a", "b", "c"], 2, latent_dim=2))
    np.testing.assert_array_equal(auto.results["weight"], listed.results["weight"])
    np.testing.assert_array_equal(auto.model.predict_proba(R), listed.model.predict_proba(R))


def test_missing_predictions_fit_a_completion_for_the_candidates_that_need_it():
    R, y = _problem(missing=0.05)
    _, fitted = _fit(R, y, "auto")
    results = fitted.results
    assert fitted.name == "super_learner"
    assert "missing_indicators" in results["candidate"]
    needs_completion = {"stacking", "nonneg_logit", "greedy", "single:a", "single:b", "single:c"}
    members = dict(zip(np.array(results["candidate"])[results["weight"] > 0],
                       fitted.model.members))
    for member_name, member in members.items():
        assert isinstance(member, Completed) == (member_name in needs_completion)
    assert {type(member) for member in members.values()} >= {Completed, CFCandidate}
    assert fitted.model.handles_missing
    assert np.all(np.isfinite(fitted.model.predict_proba(R)))


@pytest.mark.parametrize("groups_per_class", [1, 3])
def test_groups_bound_the_number_of_inner_folds(groups_per_class):
    y = np.repeat([0, 1], 30)
    groups = np.concatenate([np.arange(30) % groups_per_class,
                             100 + np.arange(30) % groups_per_class])
    labeled = np.ones(60, dtype=bool)
    assert n_inner_splits(y, labeled, 2, 5, groups) == min(5, 2 * groups_per_class)


# -- the open combiner, through the estimator ------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
def test_combiner_estimator_reproduces_stacking_classifier(n_classes):
    from sklearn.datasets import make_classification

    X, y = make_classification(200, 6, n_informative=4, n_classes=n_classes, random_state=0)
    ours = CFEnsembleClassifier(E, combiner=LogisticRegression(C=0.5), cv=5).fit(X, y)
    theirs = StackingClassifier(E, final_estimator=LogisticRegression(C=0.5), cv=5).fit(X, y)
    assert ours.combiner_ == "LogisticRegression" and ours.selection_results_ is None
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-8, rtol=0)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_combiner_parameters_tune_through_get_params(binary_data):
    X, y = binary_data
    clf = CFEnsembleClassifier(E, combiner=LogisticRegression(), cv=3)
    assert clf.get_params()["combiner__C"] == 1.0
    search = GridSearchCV(clf, {"combiner__C": [1e-4, 10.0]}, cv=2, scoring="neg_log_loss")
    search.fit(X, y)
    assert search.best_estimator_.combiner_estimator_.estimator_.C in (1e-4, 10.0)
    # the two settings give different models (a C of 1e-4 shrinks to the prior)
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] < scores[1]


def test_candidate_list_runs_through_the_selection_and_the_display(binary_data):
    X, y = binary_data
    candidates = [("cf", CFCandidate()), ("cf3", CFCandidate(latent_dim=1)),
                  ("scaled_lr", make_pipeline(StandardScaler(), LogisticRegression()))]
    clf = CFEnsembleClassifier(E, combiner=candidates, cv=3, random_state=0).fit(X, y)
    results = clf.selection_results_
    assert results["candidate"] == ["cf", "cf3", "scaled_lr"]
    assert clf.combiner_ == "super_learner" and results["weight"].shape == (3,)
    display = SelectionDisplay.from_estimator(clf)
    assert {t.get_text() for t in display.ax_.get_yticklabels()} == {"cf", "cf3", "scaled_lr"}
    # nested parameters of the list, and clone keeps them
    params = clf.get_params()
    assert params["combiner__cf3__latent_dim"] == 1
    assert params["combiner__scaled_lr__logisticregression__C"] == 1.0
    clf.set_params(combiner__cf3__latent_dim=2, combiner__scaled_lr=GaussianNB())
    assert clf.combiner[1][1].get_params() == {"latent_dim": 2}
    assert isinstance(clone(clf).combiner[2][1], GaussianNB)
    with pytest.raises(ValueError, match="has no candidate 'nope'"):
        clf.set_params(combiner__nope__C=1.0)


def test_cf_candidate_overrides_the_configuration_it_is_given():
    R, y = _problem()
    labeled, w = np.ones(len(y), dtype=bool), np.ones(len(y))
    params = CFEnsembleClassifier(latent_dim=3, rho=0.5).get_params()
    context = Level1Context(n_classes=2, names=("a", "b", "c"), cf_params=params, seed=0,
                            scorer=average_precision)
    one = CFCandidate(latent_dim=1, rho=0.9).fit(R, y, labeled, w, context)
    assert one.model_.classifier_factors.shape == (3, 1)
    assert one.model_.params["rho"] == 0.9 and params["rho"] == 0.5
    assert CFCandidate().fit(R, y, labeled, w, context).model_.classifier_factors.shape == (3, 3)
    assert repr(CFCandidate(latent_dim=1)) == "CFCandidate(latent_dim=1)"


@pytest.mark.parametrize("combiner, match", [
    ([], "non-empty list"),
    ([("a", LogisticRegression()), ("a", GaussianNB())], "unique"),
    ([("a__b", LogisticRegression())], "cannot contain '__'"),
    ([("svm", LinearSVC())], "has no predict_proba"),
    ([("scaler", StandardScaler())], "expected a scikit-learn classifier"),
])
def test_invalid_combiner_lists_are_explained(binary_data, combiner, match):
    X, y = binary_data
    with pytest.raises((ValueError, TypeError), match=match):
        CFEnsembleClassifier(E, combiner=combiner, cv=3).fit(X, y)


def test_combiner_estimator_needs_predict_proba(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="has no predict_proba"):
        CFEnsembleClassifier(E, combiner=LinearSVC(), cv=3).fit(X, y)


def test_estimator_candidate_passes_sample_weight_only_when_not_uniform():
    R, y = _problem()
    labeled = np.ones(len(y), dtype=bool)
    context = Level1Context(n_classes=2, names=("a", "b", "c"), cf_params={}, seed=0,
                            scorer=average_precision)
    # GaussianNB accepts weights; a weight of 0 on every positive row but one
    # changes its class prior, uniform weights change nothing.
    plain = EstimatorCandidate(GaussianNB()).fit(R, y, labeled, np.ones(len(y)), context)
    assert plain.estimator_.class_prior_[1] == pytest.approx(y.mean())
    w = np.where(y == 1, 0.0, 1.0)
    w[np.flatnonzero(y)[0]] = 1.0
    weighted = EstimatorCandidate(GaussianNB()).fit(R, y, labeled, w, context)
    assert weighted.estimator_.class_prior_[1] == pytest.approx(1 / w.sum())


def test_combiner_without_sample_weight_is_explained_only_when_weights_differ(binary_data):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = binary_data
    clf = CFEnsembleClassifier(E, combiner=KNeighborsClassifier(), cv=3)
    clf.fit(X, y, sample_weight=np.ones(len(y)))  # uniform weights: fitted unweighted
    with pytest.raises(TypeError, match="KNeighborsClassifier does not accept sample_weight"):
        clf.fit(X, y, sample_weight=np.where(y == 1, 2.0, 1.0))


def test_posterior_correction_is_read_at_fit(binary_data):
    X, y = binary_data
    clf = CFEnsembleClassifier(E, combiner="cf", focal_gamma=2.0, cv=3, random_state=0)
    corrected = clf.fit(X, y).predict_proba(X)
    clf.set_params(posterior_correction=False)
    np.testing.assert_array_equal(clf.predict_proba(X), corrected)  # no effect until refit
    raw = clf.fit(X, y).predict_proba(X)
    assert np.abs(raw - corrected).max() > 1e-3
