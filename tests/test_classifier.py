"""CFEnsembleClassifier: behaviour a scikit-learn user relies on."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe._aggregator import aggregate, prior_intercept, supervised_loss

from .conftest import light_estimators


def make(**params):
    """The CF aggregator itself (tests/test_selection.py covers combiner='auto')."""
    params.setdefault("cv", 3)
    params.setdefault("latent_dim", 2)
    params.setdefault("combiner", "cf")
    return CFEnsembleClassifier(light_estimators(), **params)


def test_binary_fit_predict_shapes(binary_data):
    X, y = binary_data
    clf = make(random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.classifier_factors_.shape == (2, 2)  # one column per estimator
    assert clf.coef_.shape == (1, 2) and clf.intercept_.shape == (1,)
    assert clf.score(X, y) > 0.85
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(clf.decision_function(X) > 0).astype(int)])
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))


def test_multiclass_string_labels(multiclass_data):
    X, y = multiclass_data
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = make(random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    # q = m * K columns: every estimator-class pair is a column.
    assert clf.classifier_factors_.shape == (2 * 3, 2)
    assert clf.coef_.shape == (3, 6)
    assert set(clf.predict(X)) <= set(labels)
    assert clf.score(X, labels) > 0.8
    np.testing.assert_array_equal(np.argmax(clf.decision_function(X), axis=1), np.argmax(clf.predict_proba(X), axis=1))


def test_same_random_state_gives_identical_refits(binary_data):
    X, y = binary_data
    a = CFEnsembleClassifier(random_state=3, cv=3).fit(X, y).predict_proba(X)
    b = CFEnsembleClassifier(random_state=3, cv=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_default_estimators_are_diverse_and_used(binary_data):
    X, y = binary_data
    names = [name for name, _ in default_estimators(0)]
    assert len(set(names)) == len(names) >= 5
    clf = CFEnsembleClassifier(random_state=0, cv=3).fit(X, y)
    assert list(clf.named_estimators_) == names
    assert clf.classifier_factors_.shape[0] == len(names)


def test_clone_and_pickle_round_trips_give_identical_predictions(binary_data):
    X, y = binary_data
    clf = make(random_state=0, focal_gamma=2.0).fit(X, y)
    again = clone(clf).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), again.predict_proba(X))
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_proba(X), restored.predict_proba(X))


def test_predict_is_row_independent(binary_data):
    """Inductive: a row's prediction does not depend on the other rows."""
    X, y = binary_data
    clf = make(random_state=0).fit(X, y)
    full = clf.predict_proba(X)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(clf.predict_proba(X[order]), full[order], rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X[:7]), full[:7], rtol=1e-12)


def test_grid_search_over_imbalance_and_nested_parameters(binary_data):
    X, y = binary_data
    pipe = make_pipeline(StandardScaler(), make())
    grid = GridSearchCV(
        pipe,
        {
            "cfensembleclassifier__focal_gamma": [0.0, 2.0],
            "cfensembleclassifier__use_class_weights": [False, True],
            "cfensembleclassifier__tree__max_depth": [2, 4],
        },
        cv=3,
        scoring="average_precision",
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    best = grid.best_estimator_[-1]
    assert best.named_estimators_["tree"].max_depth == grid.best_params_["cfensembleclassifier__tree__max_depth"]
    scores = cross_val_score(make(random_state=0), X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and scores.min() > 0.75


def test_drop_and_set_params(binary_data):
    X, y = binary_data
    clf = make(random_state=0).set_params(nb="drop").fit(X, y)
    assert clf.named_estimators_["nb"] == "drop"
    assert len(clf.estimators_) == 1
    assert clf.classifier_factors_.shape[0] == 1
    with pytest.raises(ValueError, match="All estimators are dropped"):
        make().set_params(nb="drop", tree="drop").fit(X, y)


def test_estimator_without_predict_proba_enters_by_decision_function(binary_data):
    X, y = binary_data
    clf = CFEnsembleClassifier([("svm", SVC())], cv=3, combiner="cf").fit(X, y)
    assert clf.stack_method_ == ["decision_function"]
    # tests/test_decision_function.py tests the calibration and its leakage.


@pytest.mark.parametrize(
    "cv",
    [4, StratifiedKFold(3, shuffle=True, random_state=0), "iterable"],
    ids=["int", "splitter", "iterable"],
)
def test_cv_accepts_int_splitter_and_iterable(binary_data, cv):
    X, y = binary_data
    if cv == "iterable":
        cv = list(KFold(3).split(X))
    clf = make(cv=cv, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.8


def test_out_of_fold_matrix_uses_the_same_folds_for_every_estimator(binary_data):
    """The aggregator is trained on the fold-in of the out-of-fold matrix.

    Recomputing that matrix with cross_val_predict on the same folds and
    folding it in reproduces the supervised loss the fit reported, which holds
    only if every estimator used those folds and fit trained the aggregator on
    exactly the representation predict computes.
    """
    X, y = binary_data
    folds = list(StratifiedKFold(3).split(X, y))
    clf = make(cv=folds, random_state=0, focal_gamma=1.0).fit(X, y)
    R = np.column_stack(
        [cross_val_predict(clone(est), X, y, cv=folds, method="predict_proba")[:, 1] for _, est in light_estimators()]
    )
    R_hat = clf._fold_in(R) @ clf.classifier_factors_.T
    raw = aggregate(R_hat, "weighted", clf.coef_, clf.intercept_, 2, clf.aggregator_input)
    s = clf.class_weight_[y]
    assert supervised_loss(raw, y, s, 1.0) == pytest.approx(clf.history_["supervised"][-1], rel=1e-12)


@pytest.mark.parametrize("strategy", ["uniform", "certainty", "label_aware", "calibration", "agreement", "callable"])
def test_every_confidence_strategy_changes_the_fit(binary_data, strategy):
    X, y = binary_data

    def squared(R):
        return 0.05 + (R - 0.5) ** 2

    conf = squared if strategy == "callable" else strategy
    reference = "certainty" if strategy != "certainty" else "uniform"
    a = make(confidence=conf, rho=0.5, random_state=0).fit(X, y)
    b = make(confidence=reference, rho=0.5, random_state=0).fit(X, y)
    assert not np.allclose(a.classifier_factors_, b.classifier_factors_)
    assert not np.allclose(a.predict_proba(X), b.predict_proba(X))


def test_label_aware_alpha_changes_the_fit(binary_data):
    X, y = binary_data
    a = make(confidence="label_aware", label_aware_alpha=0.0, random_state=0).fit(X, y)
    b = make(confidence="label_aware", label_aware_alpha=5.0, random_state=0).fit(X, y)
    assert not np.allclose(a.classifier_factors_, b.classifier_factors_)


def test_confidence_callable_with_wrong_shape_is_explained(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match=r"returned shape \(300,\).*shape \(300, 2\)"):
        make(confidence=lambda R: R[:, 0]).fit(X, y)
    with pytest.raises(ValueError, match="negative or non-finite"):
        make(confidence=lambda R: R - 1.0).fit(X, y)


def test_rho_trades_reconstruction_against_supervision(binary_data):
    X, y = binary_data
    fits = {rho: make(rho=rho, random_state=0).fit(X, y) for rho in (0.1, 0.5, 1.0)}
    probas = {rho: f.predict_proba(X) for rho, f in fits.items()}
    assert not np.allclose(probas[0.1], probas[1.0])
    assert not np.allclose(probas[0.5], probas[1.0])
    # The objective is rho * L_recon + (1 - rho) * L_sup, term by term.
    for rho, f in fits.items():
        h = f.history_
        expected = rho * np.array(h["reconstruction"]) + (1 - rho) * np.array(h["supervised"])
        np.testing.assert_allclose(h["objective"], expected)


def test_history_and_convergence(binary_data):
    X, y = binary_data
    clf = make(random_state=0, tol=1e-6).fit(X, y)
    assert set(clf.history_) == {"objective", "reconstruction", "supervised"}
    assert all(len(v) == clf.n_iter_ for v in clf.history_.values())
    assert clf.n_iter_ < clf.max_iter
    with pytest.warns(ConvergenceWarning, match=r"did not converge \(backend='als', stopped after "
                      r"2 of max_iter=2 iterations\): max_iter was reached"):
        capped = make(random_state=0, max_iter=2, tol=0.0).fit(X, y)
    assert capped.n_iter_ == 2


def test_mean_aggregator_averages_reconstructed_probabilities(binary_data):
    X, y = binary_data
    clf = make(aggregator="mean", random_state=0).fit(X, y)
    _, R_hat = clf._reconstruct(X)
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], np.clip(R_hat, 0, 1).mean(axis=1), rtol=1e-9)


def test_intercept_starts_at_weighted_log_prior():
    y = np.array([0] * 90 + [1] * 10)
    np.testing.assert_allclose(prior_intercept(y, np.ones(100), 2), [np.log(10 / 90)])
    weights = np.where(y == 1, 9.0, 1.0)
    np.testing.assert_allclose(prior_intercept(y, weights, 2), [0.0], atol=1e-12)
    np.testing.assert_allclose(prior_intercept(np.array([0, 1, 1, 2]), np.ones(4), 3), np.log([0.25, 0.5, 0.25]))


def test_class_weights_are_balanced_and_weighted_by_sample_weight(binary_data):
    X, y = binary_data
    clf = make(random_state=0, use_class_weights=True).fit(X, y)
    counts = np.bincount(y)
    np.testing.assert_allclose(clf.class_weight_, len(y) / (2 * counts))
    assert np.all(make(use_class_weights=False, random_state=0).fit(X, y).class_weight_ == 1.0)
    sw = np.where(y == 1, 2.0, 1.0)
    weighted = make(random_state=0, use_class_weights=True).fit(X, y, sample_weight=sw)
    wcounts = np.bincount(y, weights=sw)
    np.testing.assert_allclose(weighted.class_weight_, wcounts.sum() / (2 * wcounts))


def test_sample_weight_reaches_base_estimators_and_pipelines(binary_data):
    X, y = binary_data
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    clf = CFEnsembleClassifier(
        [("lr", make_pipeline(StandardScaler(), LogisticRegression())), ("tree", DecisionTreeClassifier(max_depth=3))],
        cv=3,
        latent_dim=2,
        random_state=0,
    ).fit(X, y, sample_weight=sw)
    scaler = clf.named_estimators_["lr"][0]
    np.testing.assert_allclose(scaler.mean_, np.average(X, axis=0, weights=sw))


def test_focal_loss_with_class_weights_gives_calibrated_posterior():
    """Known posterior: correction lowers Brier and log loss, keeps the ranking."""
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.standard_normal((n, 4))
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] - 2.5
    posterior = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.uniform(size=n) < posterior).astype(int)
    train, test = np.arange(n) < 3000, np.arange(n) >= 3000
    clf = CFEnsembleClassifier(
        [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))],
        focal_gamma=2.0,
        use_class_weights=True,
        latent_dim=2,
        cv=3,
        random_state=0,
        combiner="cf",
    ).fit(X[train], y[train])
    corrected = clf.predict_proba(X[test])[:, 1]
    raw = clf.set_params(posterior_correction=False).fit(X[train], y[train]).predict_proba(
        X[test])[:, 1]
    assert brier_score_loss(y[test], corrected) < brier_score_loss(y[test], raw)
    assert log_loss(y[test], corrected) < log_loss(y[test], raw)
    # Raw focal + class-weighted output overestimates the 8% minority badly;
    # the corrected mean is close to the true mean posterior.
    assert abs(corrected.mean() - posterior[test].mean()) < 0.02 < abs(raw.mean() - posterior[test].mean())
    assert roc_auc_score(y[test], corrected) == pytest.approx(roc_auc_score(y[test], raw), abs=1e-12)


# -- errors -----------------------------------------------------------------


def test_one_class_is_rejected(binary_data):
    X, _ = binary_data
    with pytest.raises(ValueError, match="at least 2 classes; got only one class"):
        make().fit(X, np.zeros(len(X)))


def test_continuous_target_is_rejected(binary_data):
    X, _ = binary_data
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        make().fit(X, np.linspace(0, 1, len(X)))


def test_nan_in_target_is_rejected(binary_data):
    X, y = binary_data
    y = y.astype(float)
    y[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN.*unlabeled_label"):
        make().fit(X, y)


def test_sample_weight_errors(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="sample_weight has 10 entries but X has 300 rows"):
        make().fit(X, y, sample_weight=np.ones(10))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        make().fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        make().fit(X, y, sample_weight=-np.ones(len(y)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"focal_gamma": -1.0}, "'focal_gamma' parameter of CFEnsembleClassifier must be a float in the range \\[0"),
        ({"rho": 1.5}, "'rho' parameter of CFEnsembleClassifier must be a float in the range \\[0.0, 1.0\\]"),
        ({"rho": -0.1}, "'rho' parameter"),
        ({"latent_dim": 0}, "'latent_dim' parameter of CFEnsembleClassifier must be an int in the range \\[1, inf\\)"),
        ({"backend": "gpu"}, "'backend' parameter of CFEnsembleClassifier must be a str among"),
        ({"confidence": "loud"}, "'confidence' parameter"),
        ({"aggregator": "median"}, "'aggregator' parameter"),
    ],
)
def test_invalid_parameters_are_explained(binary_data, params, message):
    X, y = binary_data
    with pytest.raises(ValueError, match=message):
        make(**params).fit(X, y)


def test_invalid_estimators_are_explained(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="non-empty list of \\(name, estimator\\)"):
        CFEnsembleClassifier([]).fit(X, y)
    with pytest.raises(ValueError, match="is not a classifier"):
        CFEnsembleClassifier([("scaler", StandardScaler())]).fit(X, y)


def test_nested_parameters_of_the_default_estimators(binary_data):
    """estimators=None tunes like an explicit list, as README.md promises."""
    X, y = binary_data
    clf = CFEnsembleClassifier(random_state=0, combiner="cf", cv=3)
    params = clf.get_params()
    assert params["forest__max_depth"] is None
    assert {"logistic", "naive_bayes", "tree", "forest", "boosting"} <= set(params)
    assert clf.get_params(deep=False)["estimators"] is None
    # Making the set explicit seeds it exactly as fit does.
    same = clone(clf).set_params(forest__max_depth=None)
    assert same.estimators is not None
    np.testing.assert_array_equal(clone(clf).fit(X, y).predict_proba(X[:5]),
                                  same.fit(X, y).predict_proba(X[:5]))
    search = GridSearchCV(
        clf, {"forest__max_depth": [2], "tree": ["drop", DecisionTreeClassifier(max_depth=2)]},
        cv=2, scoring="average_precision",
    ).fit(X, y)
    best = search.best_estimator_
    assert best.named_estimators_["forest"].max_depth == 2
    assert clf.estimators is None  # the searched estimator itself is untouched
