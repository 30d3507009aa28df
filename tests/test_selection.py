"""Level-1 candidates, selection and pool (skcfe/level1/) and the classifier's use."""

import re

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from skcfe import CFEnsembleClassifier, SelectionDisplay
from skcfe.level1 import Level1Candidate, Level1Context
from skcfe.level1.candidates import (
    FactorCandidate,
    IndicatorCandidate,
    NonNegLogitCandidate,
    default_candidates,
    greedy_selection,
)
from skcfe.level1.pool import fit_log_linear_pool, pool_members, super_learner_weights
from skcfe.level1.selection import (
    average_precision,
    get_scorer,
    inner_folds,
    neg_log_loss,
    select,
)

from .conftest import light_estimators

matplotlib.use("Agg")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 10), st.floats(0.01, 10)),
             min_size=2, max_size=60)
)
def test_average_precision_equals_scikit_learn(rows):
    y, score, w = (np.array(c) for c in zip(*rows))
    if y.sum() == 0:
        return
    score = score / 10.0  # ties on purpose
    proba = np.column_stack([1 - score, score])
    expected = average_precision_score(y, score, sample_weight=w)
    assert average_precision(y, proba, w) == pytest.approx(expected, abs=1e-12)


def test_neg_log_loss_equals_scikit_learn():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=50)
    y, w = rng.integers(0, 4, 50), rng.random(50)
    expected = -log_loss(y, proba, sample_weight=w, labels=np.arange(4))
    assert neg_log_loss(y, proba, w) == pytest.approx(expected, rel=1e-12)


def test_get_scorer_accepts_scikit_learn_names():
    y = np.array([0, 1, 1, 0, 1])
    proba = np.column_stack([1 - np.linspace(0.1, 0.9, 5), np.linspace(0.1, 0.9, 5)])
    roc = get_scorer("roc_auc", 2)(y, proba, np.ones(5))
    assert roc == pytest.approx(4 / 6)  # 4 of the 6 positive-negative pairs in order
    with pytest.raises(ValueError, match="not_a_metric"):
        get_scorer("not_a_metric", 2)


def test_pool_of_one_model_is_platt_scaling():
    # An overconfident model (logit three times too large): the pool recovers
    # the slope 1/3, as logistic regression on its logit does.
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < expit(true_logit)).astype(int)
    F = logit(expit(3 * true_logit).clip(1e-4, 1 - 1e-4))[:, None]
    w, b = fit_log_linear_pool(F, y, np.ones(len(y)), 2)
    lr = LogisticRegression(C=1.0).fit(F, y)
    assert w[0] == pytest.approx(lr.coef_[0, 0], abs=1e-4)
    assert b[0] == pytest.approx(lr.intercept_[0], abs=1e-4)
    assert w[0] == pytest.approx(1 / 3, abs=0.03)


def test_pool_weights_are_non_negative():
    # A model that is anti-correlated with the labels gets weight 0, not a negative one.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    good = np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.05, 2000)
    bad = 1 - good
    F = logit(np.column_stack([good, bad]).clip(1e-4, 1 - 1e-4))
    w, _ = fit_log_linear_pool(F, y, np.ones(2000), 2)
    assert w[0] > 0.5
    assert w[1] == 0.0


def test_greedy_selection_prefers_the_accurate_model():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    exact = np.column_stack([1.0 - y, y]) * 0.9 + 0.05
    noise = rng.dirichlet([1, 1], size=400)
    counts = greedy_selection(np.stack([noise, exact, noise]), y, np.ones(400),
                              average_precision, n_steps=10)
    assert counts[1] >= 1
    assert counts[0] == counts[2] == 0


def _context(n_classes=2, names=("a", "b", "c"), scorer=average_precision, seed=0):
    return Level1Context(n_classes=n_classes, names=tuple(names),
                         cf_params=CFEnsembleClassifier().get_params(deep=False), seed=seed,
                         scorer=scorer)


class Memorizer(Level1Candidate):
    """Perfect on the rows it was fitted on, uninformative anywhere else."""

    def fit(self, R, y, labeled, weights, context):
        self.seen_ = {row.tobytes(): label for row, label in zip(R[labeled], y[labeled])}
        self.n_classes_ = context.n_classes
        return self

    def predict_proba(self, R):
        proba = np.full((len(R), self.n_classes_), 1.0 / self.n_classes_)
        for i, row in enumerate(R):
            label = self.seen_.get(row.tobytes())
            if label is not None:
                proba[i] = np.eye(self.n_classes_)[label]
        return proba


def test_selection_scores_candidates_only_on_rows_they_were_not_fitted_on():
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.2).astype(int)
    R = expit(1.5 * (2 * y[:, None] - 1) + rng.normal(0, 1.5, (n, 3)))
    labeled, w = np.ones(n, dtype=bool), np.ones(n)
    memorizer = Memorizer().fit(R, y, labeled, w, _context())
    # In sample the memorizer is perfect and beats the honest pool ...
    assert average_precision(y, memorizer.predict_proba(R), w) == 1.0
    library = [("memorizer", Memorizer()), ("pool", NonNegLogitCandidate())]
    results, oof = select(R, y, labeled, w, candidates=library, context=_context(),
                          random_state=0)
    # ... held out it is at chance (its out-of-fold predictions are constant).
    assert np.all(oof[0] == 0.5)
    assert results["pooled_test_score"][0] == pytest.approx(y.mean())
    assert results["pooled_test_score"][1] > 0.5
    assert list(results["rank_test_score"]) == [2, 1]


def test_holdout_selection_fits_once_and_scores_only_the_holdout():
    rng = np.random.default_rng(4)
    n = 400
    y = (rng.random(n) < 0.2).astype(int)
    R = expit(1.5 * (2 * y[:, None] - 1) + rng.normal(0, 1.5, (n, 3)))
    labeled, w = np.ones(n, dtype=bool), np.ones(n)
    fit, score = np.arange(0, n, 2), np.arange(1, n, 4)  # a quarter of the rows unused
    library = [("memorizer", Memorizer()), ("pool", NonNegLogitCandidate())]
    results, oof = select(R, y, labeled, w, candidates=library, context=_context(),
                          holdout=(fit, score), return_estimators=True)
    assert oof.shape == (2, 1, len(score), 2)
    assert np.all(oof[0] == 0.5)  # the memorizer saw none of the scored rows
    assert "split1_test_score" not in results
    np.testing.assert_array_equal(results["pooled_test_score"], results["split0_test_score"])
    assert results["pooled_test_score"][1] == pytest.approx(
        average_precision(y[score], oof[1, 0], w[score]))
    (memorizer,), (pool,) = results["estimators"]
    assert len(memorizer.seen_) == len({R[i].tobytes() for i in fit})
    np.testing.assert_array_equal(pool.predict_proba(R[score]), oof[1, 0])


def _grouped_duplicates(n_groups=60, size=4, seed=5):
    """R whose rows repeat within each group (a patient seen ``size`` times)."""
    rng = np.random.default_rng(seed)
    y_group = (rng.random(n_groups) < 0.3).astype(int)
    y_group[:2] = [0, 1]
    R_group = expit(0.5 * (2 * y_group[:, None] - 1) + rng.normal(0, 1.5, (n_groups, 3)))
    groups = np.repeat(np.arange(n_groups), size)
    return R_group[groups], y_group[groups], groups


@pytest.mark.parametrize("n_repeats", [1, 2])
def test_inner_folds_keep_every_group_on_one_side(n_repeats):
    _, y, groups = _grouped_duplicates()
    folds = inner_folds(y, groups, n_splits=4, n_repeats=n_repeats, random_state=0)
    assert len(folds) == 4 * n_repeats
    for r in range(n_repeats):
        tests = np.concatenate([test for _, test in folds[4 * r:4 * (r + 1)]])
        assert np.array_equal(np.sort(tests), np.arange(len(y)))  # a partition per repeat
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert set(y[test]) == {0, 1}  # stratified: both classes held out


def test_selection_with_groups_sees_through_a_group_memorizer():
    # Rows repeat within groups: without groups the memorizer finds each
    # held-out row among its training rows and looks perfect; with groups
    # it is held out for what it is.
    R, y, groups = _grouped_duplicates()
    labeled, w = np.ones(len(y), dtype=bool), np.ones(len(y))
    library = [("memorizer", Memorizer()), ("pool", NonNegLogitCandidate())]
    leaky, _ = select(R, y, labeled, w, candidates=library, context=_context(),
                      random_state=0)
    honest, _ = select(R, y, labeled, w, candidates=library, context=_context(),
                       random_state=0, groups=groups)
    assert leaky["pooled_test_score"][0] == 1.0
    assert honest["pooled_test_score"][0] == pytest.approx(y.mean())
    assert list(honest["rank_test_score"]) == [2, 1]


def test_precomputed_input_takes_groups_for_the_selection():
    R, y, groups = _grouped_duplicates()
    clf = CFEnsembleClassifier("precomputed", selection_cv=4, random_state=0)
    clf.fit(R, y, groups=groups)
    assert "split3_test_score" in clf.selection_results_
    # With a forced CF combiner no folds are made at all: groups have no use.
    with pytest.raises(ValueError, match="got groups, but"):
        CFEnsembleClassifier("precomputed", combiner="cf").fit(R, y, groups=groups)


def test_classifier_never_picks_a_memorizing_base_model(binary_data):
    # A base model that is perfect in sample shows up in R as out-of-fold
    # predictions only, so the selection sees its held-out quality.
    X, y = binary_data
    from sklearn.tree import DecisionTreeClassifier

    clf = CFEnsembleClassifier(
        light_estimators() + [("memorizer", DecisionTreeClassifier(random_state=0))],
        cv=3, random_state=0,
    ).fit(X, y)
    results = clf.selection_results_
    assert clf.combiner_ != "single:memorizer"
    assert clf.estimators_[-1].score(X, y) == 1.0
    memorizer = results["candidate"].index("single:memorizer")
    assert results["rank_test_score"][memorizer] > 1


def test_parallel_selection_gives_the_same_results(multiclass_data):
    """n_jobs runs the selection's (candidate, fold) fits as joblib tasks on
    copies of the candidates: the scores, the pool and the probabilities do
    not depend on it, and the library's candidates are left unfitted."""
    X, y = multiclass_data
    fits = [CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, n_jobs=n_jobs)
            .fit(X, y) for n_jobs in (None, 2)]
    for key in ("pooled_test_score", "split0_test_score", "weight"):
        np.testing.assert_array_equal(fits[0].selection_results_[key],
                                      fits[1].selection_results_[key])
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    library = [("pool", NonNegLogitCandidate())]
    rng = np.random.default_rng(0)
    R = rng.random((60, 2))
    select(R, (R[:, 0] > 0.5).astype(int), np.ones(60, dtype=bool), np.ones(60),
           candidates=library, context=_context(names=("a", "b")), random_state=0)
    assert not hasattr(library[0][1], "weights_")


def test_default_candidates_lists_every_documented_candidate():
    names = [n for n, _ in default_candidates(["a", "b"], 2)]
    assert names == ["cf", "cf(latent_dim=2)", "stacking", "nonneg_logit", "greedy",
                     "single:a", "single:b"]
    names = [n for n, _ in default_candidates(["a"], 3, latent_dim=3)]
    assert "cf(latent_dim=3)" not in names
    semi = [n for n, _ in default_candidates(["a", "b"], 2, semi_supervised=True)]
    assert semi[-2:] == ["factor", "voting"]
    # both were measured on binary problems only: K classes keep the supervised library
    semi_k = [n for n, _ in default_candidates(["a"], 3, latent_dim=3, semi_supervised=True)]
    assert semi_k == names
    missing = [n for n, _ in default_candidates(["a"], 3, latent_dim=3, missing=True)]
    assert missing == [*names, "missing_indicators"]


def _abstaining_problem(n=600, seed=0):
    """Three binary base models; model 0 abstains on most positives (missing not at random).

    Where model 0 has a prediction it is pure noise, so only the fact that it
    is missing carries its information about the class.
    """
    rng = np.random.RandomState(seed)
    y = (rng.rand(n) < 0.2).astype(int)
    R = expit((2 * y - 1)[:, None] * 0.4 + rng.randn(n, 3) * 1.5)
    R[:, 0] = rng.rand(n)
    R[(y == 1) & (rng.rand(n) < 0.8), 0] = np.nan
    R[(y == 0) & (rng.rand(n) < 0.1), 0] = np.nan
    return R, y


def test_indicator_candidate_reads_missingness_as_information():
    R, y = _abstaining_problem()
    train, test = np.arange(400), np.arange(400, 600)
    ones = np.ones(len(y))
    labeled = np.ones(len(y), dtype=bool)
    indicator = IndicatorCandidate().fit(R[train], y[train], labeled[train], ones[train], _context())
    proba = indicator.predict_proba(R[test])
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)
    # the indicator of model 0 gets a large positive weight; its value column does not
    coef = indicator.model_.coef_[0]
    assert coef.shape == (3 + 3,)
    assert coef[3] > 1.0 and abs(coef[0]) < coef[3] / 4
    # the same LR on mean-imputed logits alone (what a completion keeps) ranks far worse
    without = LogisticRegression().fit(np.nan_to_num(logit(R[train]), nan=0.0), y[train])
    ap_without = average_precision_score(
        y[test], without.predict_proba(np.nan_to_num(logit(R[test]), nan=0.0))[:, 1])
    ap_with = average_precision_score(y[test], proba[:, 1])
    assert ap_with > ap_without + 0.1


def test_indicator_candidate_one_indicator_per_model_for_k_classes():
    rng = np.random.RandomState(0)
    n, m, K = 90, 2, 3
    y = np.arange(n) % K
    R = softmax(rng.randn(n, m, K), axis=2).reshape(n, m * K)
    R[:10, :K] = np.nan  # model 0 missing on ten rows, every class column of it
    ones, labeled = np.ones(n), np.ones(n, dtype=bool)
    candidate = IndicatorCandidate().fit(R, y, labeled, ones, _context(K, names=("a", "b")))
    assert candidate.model_.coef_.shape == (K, m * K + m)
    features = candidate._features(candidate._logits(R))
    assert np.array_equal(features[:, -m:], np.column_stack([np.arange(n) < 10, np.zeros(n)]))
    assert np.all(np.isfinite(candidate.predict_proba(R)))


def test_missing_indicators_reach_the_classifier_choice():
    R, y = _abstaining_problem()
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R[:400], y[:400])
    results = clf.selection_results_
    scores = dict(zip(results["candidate"], results["pooled_test_score"]))
    # scored like every candidate, and the best of them on this problem
    assert scores["missing_indicators"] == max(scores.values())
    assert results["weight"][results["candidate"].index("missing_indicators")] > 0
    proba = clf.predict_proba(R[400:])
    assert np.all(np.isfinite(proba))
    forced = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0).fit(
        R[:400], y[:400])
    assert (average_precision_score(y[400:], proba[:, 1])
            > average_precision_score(y[400:], forced.predict_proba(R[400:])[:, 1]) + 0.05)
    # fitted on a complete matrix, the library has no such candidate
    complete = CFEnsembleClassifier("precomputed", random_state=0).fit(
        np.nan_to_num(R[:400], nan=0.5), y[:400])
    assert "missing_indicators" not in complete.selection_results_["candidate"]


def _factor_problem(n_unlabeled, seed=0):
    """Five noisy copies of a latent class score; few labeled rows, many unlabeled."""
    rng = np.random.RandomState(seed)
    n = 60 + n_unlabeled
    y = (rng.rand(n) < 0.3).astype(int)
    noise = np.array([0.5, 0.7, 1.0, 2.0, 4.0])
    logits = (2 * y - 1)[:, None] * 1.5 + rng.randn(n, 5) * noise
    R = 1 / (1 + np.exp(-logits))
    labeled = np.zeros(n, dtype=bool)
    labeled[:60] = True
    return R, y, labeled


def test_factor_candidate_weights_models_by_their_noise_and_reads_unlabeled_rows():
    R, y, labeled = _factor_problem(2000)
    candidate = FactorCandidate().fit(R, y, labeled, np.ones(len(y)), _context(names="abcde"))
    # posterior-mean weights lambda_j / psi_j: the least noisy model weighs most
    weights = candidate.factor_.components_[0] / candidate.factor_.noise_variance_
    assert np.all(np.diff(weights * candidate.sign_) < 0)
    proba = candidate.predict_proba(R)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(axis=1), 1)
    assert roc_auc_score(y, proba[:, 1]) > 0.9
    # the loadings come from every row: dropping the unlabeled ones changes them
    labeled_only = FactorCandidate().fit(R[labeled], y[labeled], labeled[labeled],
                                         np.ones(60), _context(names="abcde"))
    assert not np.allclose(labeled_only.factor_.components_, candidate.factor_.components_)


def test_unlabeled_rows_reach_the_selection_through_the_factor_candidate():
    R, y, labeled = _factor_problem(600)
    y_marked = np.where(labeled, y, -1)
    clf = CFEnsembleClassifier("precomputed", unlabeled_label=-1, random_state=0).fit(R, y_marked)
    assert {"factor", "voting"} <= set(clf.selection_results_["candidate"])
    # without unlabeled rows the library is the fully supervised one
    full = CFEnsembleClassifier("precomputed", random_state=0).fit(R[labeled], y[labeled])
    assert "factor" not in full.selection_results_["candidate"]


# Predictions of CFEnsembleClassifier(light_estimators(), cv=3, random_state=0)
# recorded before the combiner selection existed (commit 24c8372).
FORCED_CF_ORACLE = [
    ({}, [0.042499647546, 0.869461287639, 0.124885742877, 0.096003167699]),
    ({"focal_gamma": 2.0}, [0.043490277526, 0.876330093535, 0.126351437092, 0.096231409541]),
    ({"use_class_weights": False},
     [0.053816135351, 0.876485017151, 0.137033182411, 0.102083615192]),
]


@pytest.mark.parametrize("params, expected", FORCED_CF_ORACLE)
def test_forced_cf_reproduces_the_results_before_selection(binary_data, params, expected):
    X, y = binary_data
    params = {"use_class_weights": True, **params}
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, combiner="cf", **params)
    clf.fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X[:4])[:, 1], expected, rtol=1e-8)
    assert clf.combiner_ == "cf" and clf.selection_results_ is None


def test_forced_cf_reproduces_multiclass_results(multiclass_data):
    X, y = multiclass_data
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, combiner="cf",
                               use_class_weights=True).fit(X, y)
    expected = [[5.129487533705e-02, 9.463404126181e-01, 2.364712044837e-03],
                [1.485318847845e-03, 9.983684094429e-01, 1.462717092435e-04],
                [4.180006773651e-02, 3.456551081487e-02, 9.236344214486e-01]]
    np.testing.assert_allclose(clf.predict_proba(X[:3]), expected, rtol=1e-7)


@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_select_combiner_uses_the_best_candidate(data, request):
    X, y = request.getfixturevalue(data)
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, combiner="select")
    results = clf.fit(X, y).selection_results_
    assert "weight" not in results
    n = len(results["candidate"])
    for key in ("pooled_test_score", "mean_test_score", "std_test_score", "split0_test_score",
                "split4_test_score", "rank_test_score", "mean_fit_time"):
        assert len(results[key]) == n
    folds = np.column_stack([results[f"split{k}_test_score"] for k in range(5)])
    np.testing.assert_allclose(results["mean_test_score"], folds.mean(axis=1))
    best = int(np.argmax(results["pooled_test_score"]))
    assert clf.combiner_ == results["candidate"][best]
    assert results["rank_test_score"][best] == 1
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The CF attributes describe the configured CF aggregator, whatever was chosen.
    forced = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, combiner="cf")
    np.testing.assert_allclose(forced.fit(X, y).coef_, clf.coef_)


@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_auto_combiner_is_a_super_learner(data, request):
    X, y = request.getfixturevalue(data)
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0).fit(X, y)
    results = clf.selection_results_
    weights = results["weight"]
    assert weights.shape == (len(results["candidate"]),)
    assert np.all(weights >= 0) and np.any(weights > 0)
    assert clf.combiner_ == "super_learner"
    members = clf.combiner_estimator_.members
    assert len(members) == np.count_nonzero(weights)
    # predict_proba is the non-negative log-linear pool of the members' probabilities.
    R = np.column_stack([est.predict_proba(X[:50])[:, 1:] if len(clf.classes_) == 2
                         else est.predict_proba(X[:50]) for est in clf.estimators_])
    probas = np.stack([m.predict_proba(R) for m in members])
    log_pool = np.tensordot(weights[weights > 0], np.log(np.clip(probas, 1e-4, 1 - 1e-4)), 1)
    if len(clf.classes_) == 2:
        logit = log_pool[:, 1] - np.tensordot(
            weights[weights > 0], np.log(np.clip(1 - probas[:, :, 1], 1e-4, 1 - 1e-4)), 1)
        expected = expit(logit + clf.combiner_estimator_.intercept[0])
        np.testing.assert_allclose(clf.predict_proba(X[:50])[:, 1], expected, rtol=1e-9)
    else:
        expected = softmax(log_pool + clf.combiner_estimator_.intercept, axis=1)
        np.testing.assert_allclose(clf.predict_proba(X[:50]), expected, rtol=1e-9)


def test_super_learner_weights_favour_the_informative_candidate():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 1000)
    good = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.1, 1000), 0.01, 0.99)
    noise = rng.random(1000)
    oof = np.stack([np.stack([np.column_stack([1 - p, p])] * 2) for p in (noise, good)])
    weights, _ = super_learner_weights(oof, y, np.ones(1000), 2)
    assert weights[1] > 0.5
    assert weights[0] < 0.05 * weights[1]


def test_pool_members_screen_single_models_only():
    names = ["cf", "stacking", "single:a", "single:b", "single:c", "greedy", "single:d"]
    scores = np.array([0.1, 0.2, 0.5, 0.9, 0.5, 0.0, 0.7])
    np.testing.assert_array_equal(pool_members(names, scores, max_singles=2), [0, 1, 3, 5, 6])
    # ties keep library order; every non-single candidate stays whatever its score
    np.testing.assert_array_equal(pool_members(names, scores, max_singles=3), [0, 1, 2, 3, 5, 6])
    np.testing.assert_array_equal(pool_members(names, scores), np.arange(len(names)))


def test_many_base_models_enter_the_pool_by_score():
    """Twelve base models: only the five best-scoring single models can get a pool weight."""
    rng = np.random.RandomState(0)
    n = 600
    y = (rng.rand(n) < 0.25).astype(int)
    signal = np.linspace(0.2, 2.0, 12)  # model j is better the larger j
    R = expit((2 * y - 1)[:, None] * signal + rng.randn(n, 12))
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    results = clf.selection_results_
    names, scores = results["candidate"], np.asarray(results["pooled_test_score"])
    singles = [c for c, name in enumerate(names) if name.startswith("single:")]
    assert len(singles) == 12
    entered = sorted(singles, key=lambda c: -scores[c])[:5]
    screened = [c for c in singles if c not in entered]
    assert np.all(results["weight"][screened] == 0)
    assert set(entered) <= {names.index(f"single:column{j}") for j in range(5, 12)}
    assert np.all(np.isfinite(clf.predict_proba(R)))


def test_scoring_and_sample_weight_reach_the_selection_scores():
    """The pooled score is the scorer on the candidate's out-of-fold predictions,
    with the rows' sample weights: an oracle from scikit-learn's metrics."""
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(1)
    n = 240
    y = (rng.random(n) < 0.3).astype(int)
    R = expit(1.2 * (2 * y[:, None] - 1) + rng.normal(0, 1.2, (n, 3)))
    labeled, w = np.ones(n, dtype=bool), rng.uniform(0.2, 3.0, n)
    candidates = [("pool", NonNegLogitCandidate())]
    brier = _context(scorer=get_scorer("neg_brier_score", 2))
    results, oof = select(R, y, labeled, w, candidates=candidates, context=brier, random_state=0)
    expected = -brier_score_loss(y, oof[0, 0][:, 1], sample_weight=w)
    assert results["pooled_test_score"][0] == pytest.approx(expected, rel=1e-12)
    results, oof = select(R, y, labeled, w, candidates=candidates, context=_context(),
                          random_state=0)
    expected = average_precision_score(y, oof[0, 0][:, 1], sample_weight=w)
    assert results["pooled_test_score"][0] == pytest.approx(expected, rel=1e-12)


def test_selection_folds_capped_by_the_smallest_class():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.r_[np.zeros(38, int), 1, 1]
    X[y == 1] += 3
    clf = CFEnsembleClassifier(light_estimators(), cv=StratifiedKFold(2), random_state=0)
    clf.fit(X, y)
    # Two positive rows: the selection runs on 2 folds instead of 5.
    assert np.isfinite(clf.selection_results_["pooled_test_score"]).all()
    # One labeled positive row: nothing to validate on, so the CF aggregator is used.
    # (Base estimators cannot be fitted out of fold on it: an error that says so.)
    y_one = np.r_[np.zeros(38, int), -1, 1]
    R = clf.transform(X)
    clf.set_params(unlabeled_label=-1, cv=KFold(2, shuffle=True, random_state=0))
    with pytest.raises(ValueError, match="class 1 has 1 labeled row"):
        clf.fit(X, y_one)
    pre = CFEnsembleClassifier("precomputed", unlabeled_label=-1, random_state=0).fit(R, y_one)
    assert pre.selection_results_ is None and pre.combiner_ == "cf"


def test_semi_supervised_selection(binary_data):
    X, y = binary_data
    y = y.copy()
    y[::3] = -1
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, unlabeled_label=-1)
    clf.fit(X, y)
    assert clf.combiner_ == "super_learner"
    assert np.isfinite(clf.selection_results_["pooled_test_score"]).all()
    assert set(clf.predict(X)) <= {0, 1}


def test_precomputed_matches_the_base_estimators(binary_data):
    X, y = binary_data
    folds = StratifiedKFold(3)
    from sklearn.base import clone

    R = np.column_stack([
        cross_val_predict(clone(est), X, y, cv=folds, method="predict_proba")[:, 1]
        for _, est in light_estimators()
    ])
    R_new = np.column_stack([clone(est).fit(X, y).predict_proba(X[:20])[:, 1]
                             for _, est in light_estimators()])
    direct = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0).fit(X, y)
    pre = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    assert pre.n_features_in_ == 2
    assert pre.combiner_ == direct.combiner_.replace("nb", "column0").replace("tree", "column1")
    np.testing.assert_allclose(pre.predict_proba(R_new), direct.predict_proba(X[:20]),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.full((6, 2), np.nan), r"Row 0 of X has no prediction at all \(6 such rows\)"),
        (np.full((6, 2), 1.5), r"must\s+lie in \[0, 1\]"),
        (np.full((6, 3, 1), 0.5), "2D probability matrix"),
    ],
)
def test_precomputed_rejects_bad_matrices(X, message):
    y = np.array([0, 1] * 3)
    with pytest.raises(ValueError, match=message):
        CFEnsembleClassifier("precomputed").fit(X, y)


def test_precomputed_checks_columns(multiclass_data):
    _, y = multiclass_data
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="3 column\\(s\\) per base model"):
        CFEnsembleClassifier("precomputed").fit(rng.random((len(y), 4)), y)
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(rng.random((len(y), 6)), y)
    with pytest.raises(ValueError, match="X has 3 columns, but .* on 6"):
        clf.predict_proba(rng.random((5, 3)))


def test_selection_display_renders(binary_data):
    X, y = binary_data
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0).fit(X, y)
    display = SelectionDisplay.from_estimator(clf)
    results = clf.selection_results_
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert sorted(labels) == sorted(results["candidate"])
    assert display.ax_.get_legend() is not None
    # The members of the Super Learner are highlighted and labelled with their weights.
    members = np.asarray(results["weight"]) > 0
    chosen_points = display.errorbar_[-1].lines[0].get_xdata()
    np.testing.assert_allclose(sorted(chosen_points),
                               sorted(np.asarray(results["pooled_test_score"])[members]))
    notes = [t.get_text() for t in display.ax_.texts]
    assert notes == [f"w={w:.2f}" for w in np.asarray(results["weight"])[members]]
    select = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, combiner="select")
    display = SelectionDisplay.from_estimator(select.fit(X, y))
    chosen_points = display.errorbar_[-1].lines[0].get_xdata()
    best = np.max(select.selection_results_["pooled_test_score"])
    assert chosen_points[0] == pytest.approx(best)
    forced = CFEnsembleClassifier(light_estimators(), cv=3, combiner="cf").fit(X, y)
    with pytest.raises(ValueError, match="ran no selection"):
        SelectionDisplay.from_estimator(forced)


def test_verbose_names_every_candidate(binary_data, capsys):
    X, y = binary_data
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    names = clf.selection_results_["candidate"]
    for name in names:
        assert f"[skcfe] level-1 {name}: pooled out-of-fold score" in out
        for k in range(1, 6):
            assert re.search(rf"level-1 {re.escape(name)}: fold {k} of 5, total=\s*[\d.]+s", out)
    # one line per (candidate, fold): the selection's CF fits print no sweeps;
    # only the CF aggregator as configured, fitted on every row, does
    assert len(re.findall(r"level-1 .*: fold", out)) == 5 * len(names)
    assert out.count("[ALS] sweep 1:") == 1


def _missing_problem(seed=0, n=400, m=4, rate=0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    R = expit(1.2 * (2 * y[:, None] - 1) + rng.normal(0, 1.2, (n, m)))
    R_missing = R.copy()
    R_missing[rng.random((n, m)) < rate] = np.nan
    R_missing[np.isnan(R_missing).all(axis=1), 0] = R[np.isnan(R_missing).all(axis=1), 0]
    return R, R_missing, y


def test_missing_entries_get_zero_confidence_in_the_fold_in():
    from skcfe._cf import cf_fold_in
    from skcfe.backends import fold_in

    _, R, y = _missing_problem()
    clf = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0).fit(R, y)
    model = clf._cf_model
    rows = R[:20]
    observed = ~np.isnan(rows)
    # Oracle: the ridge fold-in with zero confidence on the missing entries, whatever value
    # stands in for them.
    from skcfe._confidence import apply_confidence

    for stand_in in (0.0, 0.9):
        filled = np.where(observed, rows, stand_in)
        C = apply_confidence(model.confidence_state, filled) * observed
        expected = fold_in(filled, C, model.classifier_factors, clf.lambda_reg,
                           model.confidence_scale)
        np.testing.assert_allclose(cf_fold_in(model, rows), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["als", pytest.param("torch", marks=pytest.mark.skipif(
    not __import__("importlib").util.find_spec("torch"), reason="torch is not installed"))])
@pytest.mark.parametrize("combiner", ["auto", "select", "cf"])
def test_missing_predictions_are_completed(backend, combiner):
    _, R, y = _missing_problem()
    clf = CFEnsembleClassifier("precomputed", combiner=combiner, backend=backend,
                               random_state=0, max_iter=30).fit(R, y)
    proba = clf.predict_proba(R)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The completion carries signal: held-in ranking well above chance.
    assert average_precision(y, proba, np.ones(len(y))) > 0.5
    # Every entry missing but one still predicts.
    one = np.full((1, R.shape[1]), np.nan)
    one[0, 2] = 0.9
    assert np.isfinite(clf.predict_proba(one)).all()


def test_a_missing_entry_is_an_entry_with_zero_confidence():
    """NaN fits exactly like its column mean given zero confidence by a callable."""
    from skcfe._confidence import certainty

    _, R, y = _missing_problem(seed=1)
    observed = ~np.isnan(R)
    filled = np.where(observed, R, np.nanmean(R, axis=0))

    def masked_certainty(matrix):
        return certainty(matrix, 2) * observed

    nan_fit = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0).fit(R, y)
    masked = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0,
                                  confidence=masked_certainty).fit(filled, y)
    np.testing.assert_allclose(nan_fit.classifier_factors_, masked.classifier_factors_,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(nan_fit.coef_, masked.coef_, rtol=1e-9, atol=1e-12)
    # With full confidence on the stand-ins the fit differs: the mask is what matters.
    plain = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0).fit(filled, y)
    assert not np.allclose(nan_fit.coef_, plain.coef_, rtol=1e-3)


def test_transformer_completes_missing_entries():
    from skcfe import CFEnsembleTransformer

    _, R, y = _missing_problem(seed=2)
    out = CFEnsembleTransformer("precomputed", random_state=0).fit_transform(R, y)
    assert out.shape == R.shape and np.all(np.isfinite(out))


def test_complete_fit_rejects_missing_predictions_unless_cf():
    R_full, R, y = _missing_problem(seed=3)
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R_full, y)
    with pytest.raises(ValueError, match="fitted on a complete matrix"):
        clf.predict_proba(R)
    forced = CFEnsembleClassifier("precomputed", combiner="cf", random_state=0).fit(R_full, y)
    assert np.isfinite(forced.predict_proba(R)).all()


def test_multiclass_groups_must_be_all_present_or_all_missing(multiclass_data):
    _, y = multiclass_data
    R = np.random.default_rng(0).dirichlet(np.ones(3), size=(len(y), 2)).reshape(len(y), 6)
    R[5, 1] = np.nan
    with pytest.raises(ValueError, match="Row 5 of X has some but not all of model 0's 3 class"):
        CFEnsembleClassifier("precomputed").fit(R, y)
    R[5, :3] = np.nan
    clf = CFEnsembleClassifier("precomputed", random_state=0).fit(R, y)
    assert np.isfinite(clf.predict_proba(R)).all()


def test_selection_display_takes_a_fitted_pipeline_and_fits_its_labels(binary_data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = binary_data
    pipe = make_pipeline(StandardScaler(),
                         CFEnsembleClassifier(light_estimators(), cv=3, random_state=0)).fit(X, y)
    display = SelectionDisplay.from_estimator(pipe)
    assert display.candidates == list(pipe[-1].selection_results_["candidate"])
    # every tick label (the longest is "cf(latent_dim=2)") lies inside the figure
    renderer = display.figure_.canvas.get_renderer()
    width = display.figure_.bbox.width
    for label in display.ax_.get_yticklabels():
        box = label.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width, label.get_text()
    plt.close("all")
    not_skcfe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    with pytest.raises(TypeError, match="needs a CFEnsembleClassifier \\(or a Pipeline ending"):
        SelectionDisplay.from_estimator(not_skcfe)


def test_a_scoring_that_fails_or_returns_nan_names_scoring(multiclass_data, binary_data):
    X, y = multiclass_data
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, scoring="roc_auc")
    with pytest.raises(ValueError, match=r"scoring='roc_auc' failed on the combiner "
                       r"selection's 3-class probabilities: .* \(e.g. roc_auc_ovr\)"):
        clf.fit(X, y)

    def nan_scorer(estimator, X, y, sample_weight=None):
        return float("nan")

    X, y = binary_data
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, scoring=nan_scorer)
    with pytest.raises(ValueError, match=r"scoring=<function .*nan_scorer.*> returned nan on "
                       r"the combiner selection's inner folds"):
        clf.fit(X, y)
