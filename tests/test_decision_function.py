"""Base estimators with only decision_function: calibrated out of fold, no leakage."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from skcfe import CFEnsembleClassifier, CFEnsembleTransformer
from skcfe._matrix import cross_calibrate, fit_base_layer, fit_calibrator

from .conftest import BACKENDS


class OneNNScorer(ClassifierMixin, BaseEstimator):
    """A memorizer: the 1-nearest-neighbour label as a score, with decision_function only.

    On its own training rows it is perfect (each row is its own neighbour);
    on other rows it is as good as 1-NN.
    """

    def fit(self, X, y):
        self.X_, self.y_ = np.asarray(X, dtype=float), np.asarray(y)
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, X):
        X = np.asarray(X, dtype=float)
        distances = ((X[:, None, :] - self.X_[None, :, :]) ** 2).sum(axis=2)
        nearest = self.y_[np.argmin(distances, axis=1)]
        return np.where(nearest == self.classes_[1], 3.0, -3.0)


class PredictOnly(ClassifierMixin, BaseEstimator):
    """A classifier with neither predict_proba nor decision_function."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def _binary():
    return make_classification(240, 6, n_informative=4, random_state=0)


def _multiclass():
    return make_classification(240, 6, n_informative=4, n_classes=3, n_clusters_per_class=1,
                               random_state=1)


SCORERS = {
    "linear_svc": lambda: LinearSVC(),
    "ridge": lambda: RidgeClassifier(),
    "svc": lambda: SVC(),
}


@pytest.mark.parametrize("scorer", list(SCORERS))
@pytest.mark.parametrize("data", [_binary, _multiclass], ids=["binary", "multiclass"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_decision_function_estimators_fit_and_predict(scorer, data, backend):
    X, y = data()
    estimators = [("scorer", SCORERS[scorer]()), ("nb", GaussianNB())]
    n_classes = len(np.unique(y))
    clf = CFEnsembleClassifier(estimators, cv=3, backend=backend, random_state=0).fit(X, y)
    assert clf.stack_method_ == ["decision_function", "predict_proba"]
    assert clf.calibrators_[1] is None and hasattr(clf.calibrators_[0], "predict_proba")
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), n_classes)
    assert proba.min() >= 0 and proba.max() <= 1
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert clf.score(X, y) > 0.7
    R = clf.transform(X)
    assert R.min() >= 0 and R.max() <= 1
    if n_classes > 2:  # each estimator's class columns are a distribution
        np.testing.assert_allclose(R.reshape(len(X), 2, n_classes).sum(axis=2), 1)

    transformer = CFEnsembleTransformer(estimators, cv=3, backend=backend, random_state=0)
    width = 1 if n_classes == 2 else n_classes
    assert transformer.fit_transform(X, y).shape == (len(X), 2 * width)
    assert transformer.transform(X).shape == (len(X), 2 * width)
    assert transformer.stack_method_ == ["decision_function", "predict_proba"]


def test_estimators_with_predict_proba_keep_it():
    X, y = _binary()
    clf = CFEnsembleClassifier([("nb", GaussianNB()), ("lr", LogisticRegression())], cv=3,
                               random_state=0).fit(X, y)
    assert clf.stack_method_ == ["predict_proba", "predict_proba"]
    assert clf.calibrators_ == [None, None]
    np.testing.assert_array_equal(clf.transform(X)[:, 1], clf.estimators_[1].predict_proba(X)[:, 1])


def test_memorizer_does_not_leak_into_the_training_matrix():
    """A memorizing scorer is perfect in sample; its out-of-fold column must not be."""
    X, y = make_classification(300, 5, n_informative=3, flip_y=0.25, random_state=0)
    named = [("memorizer", OneNNScorer()), ("lr", LogisticRegression())]
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    R, fitted, calibrators = fit_base_layer(named, X, y, splits, n_classes=2, n_jobs=None,
                                            verbose=0)
    in_sample = fitted[0].decision_function(X) > 0
    assert np.mean(in_sample == y) == 1.0  # it does memorize
    oof_accuracy = np.mean((R[:, 0] > 0.5) == y)
    assert oof_accuracy < 0.85
    # The calibrated out-of-fold probabilities are moderate, not 0/1.
    assert 0.05 < R[:, 0].min() and R[:, 0].max() < 0.95
    assert calibrators[0] is not None and calibrators[1] is None


def test_memorizer_does_not_dominate_the_combiner():
    X, y = make_classification(600, 5, n_informative=3, flip_y=0.25, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0,
                                                        stratify=y)
    estimators = [("memorizer", OneNNScorer()), ("lr", LogisticRegression())]
    clf = CFEnsembleClassifier(estimators, combiner=LogisticRegression(), cv=5,
                               random_state=0).fit(X_train, y_train)
    lr_alone = LogisticRegression().fit(X_train, y_train).predict_proba(X_test)
    ensemble_loss = log_loss(y_test, clf.predict_proba(X_test))
    assert ensemble_loss < log_loss(y_test, lr_alone) + 0.02
    # The leak it avoids: a combiner trained on the in-sample matrix trusts the
    # memorizer, and its held-out log loss is much worse.
    leaky = LogisticRegression().fit(clf.transform(X_train), y_train)
    leaky_loss = log_loss(y_test, leaky.predict_proba(clf.transform(X_test)))
    assert leaky_loss > ensemble_loss + 0.03
    # The out-of-fold fit weighs the memorizer much less than the leaky one.
    oof_coef = clf.combiner_estimator_.estimator_.coef_[0]
    assert leaky.coef_[0, 0] > 2 * oof_coef[0]


def test_cross_calibration_uses_other_folds_only():
    rng = np.random.RandomState(0)
    scores = rng.normal(size=(90, 1))
    y = (scores[:, 0] + rng.normal(size=90) > 0).astype(int)
    splits = list(StratifiedKFold(3).split(scores, y))
    proba, full = cross_calibrate(scores, y, splits, 2)
    for train, test in splits:
        others = np.setdiff1d(np.arange(90), test)
        expected = fit_calibrator(scores[others], y[others]).predict_proba(scores[test])
        np.testing.assert_allclose(proba[test], expected)
        # Changing the labels of a fold does not change its own calibrated column.
        y_changed = y.copy()
        y_changed[test] = 1 - y_changed[test]
        np.testing.assert_allclose(cross_calibrate(scores, y_changed, splits, 2)[0][test],
                                   proba[test])
    np.testing.assert_allclose(full.predict_proba(scores), fit_calibrator(scores, y).predict_proba(scores))


def test_calibrator_weights_are_repetitions():
    rng = np.random.RandomState(0)
    scores = rng.normal(size=(60, 3))
    y = rng.randint(3, size=60)
    weights = rng.randint(0, 3, size=60).astype(float)
    weighted = fit_calibrator(scores, y, weights)
    repeated = fit_calibrator(np.repeat(scores, weights.astype(int), axis=0),
                              np.repeat(y, weights.astype(int)))
    np.testing.assert_allclose(weighted.predict_proba(scores), repeated.predict_proba(scores),
                               atol=1e-4)


def test_sample_weight_reaches_the_calibrator():
    X, y = _binary()
    weights = np.where(np.arange(len(y)) % 2, 1.0, 3.0)
    est = [("svc", LinearSVC()), ("nb", GaussianNB())]
    plain = CFEnsembleClassifier(est, cv=3, combiner="cf", random_state=0).fit(X, y)
    weighted = CFEnsembleClassifier(est, cv=3, combiner="cf", random_state=0).fit(
        X, y, sample_weight=weights)
    assert not np.allclose(plain.calibrators_[0][-1].coef_, weighted.calibrators_[0][-1].coef_)


def test_prefit_decision_function_estimator_is_a_clear_error():
    X, y = _binary()
    fitted = LinearSVC().fit(X, y)
    with pytest.raises(ValueError, match=r"cv='prefit'.*'svc' \(LinearSVC\) has no "
                                         r"predict_proba.*FrozenEstimator"):
        CFEnsembleClassifier([("svc", fitted), ("nb", GaussianNB().fit(X, y))],
                             cv="prefit").fit(X, y)


def test_frozen_decision_function_estimator_is_calibrated_out_of_fold():
    X, y = _binary()
    X_other, y_other = make_classification(240, 6, n_informative=4, random_state=5)
    frozen = FrozenEstimator(LinearSVC().fit(X_other, y_other))
    clf = CFEnsembleClassifier([("svc", frozen), ("nb", GaussianNB())], cv=3,
                               random_state=0).fit(X, y)
    assert clf.stack_method_[0] == "decision_function"
    assert clf.estimators_[0].estimator is frozen.estimator
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize("data", [_binary, _multiclass], ids=["binary", "multiclass"])
def test_unlabeled_rows_get_the_refit_calibrated_scores(data):
    X, y = data()
    y = y.copy()
    y[::4] = -1
    estimators = [("svc", LinearSVC()), ("nb", GaussianNB())]
    transformer = CFEnsembleTransformer(estimators, cv=3, unlabeled_label=-1, random_state=0)
    R, _ = transformer._fit_model(X, y)
    unlabeled = y == -1
    clf = CFEnsembleClassifier(estimators, cv=3, unlabeled_label=-1, random_state=0).fit(X, y)
    np.testing.assert_allclose(R[unlabeled], clf.transform(X[unlabeled]))
    np.testing.assert_allclose(R[unlabeled], transformer._new_matrix(X[unlabeled]))


def test_memory_cache_holds_the_calibrators(tmp_path):
    X, y = _multiclass()
    estimators = [("svc", LinearSVC()), ("nb", GaussianNB())]
    first = CFEnsembleClassifier(estimators, cv=3, combiner="cf", random_state=0,
                                 memory=str(tmp_path)).fit(X, y)
    cached = CFEnsembleClassifier(estimators, cv=3, combiner="cf", random_state=0,
                                  memory=str(tmp_path)).fit(X, y)
    fresh = CFEnsembleClassifier(estimators, cv=3, combiner="cf", random_state=0).fit(X, y)
    assert cached.calibrators_[0] is not None
    np.testing.assert_allclose(cached.predict_proba(X), fresh.predict_proba(X))
    np.testing.assert_allclose(first.predict_proba(X), cached.predict_proba(X))


def test_pickle_and_n_jobs():
    X, y = _multiclass()
    estimators = [("svc", LinearSVC()), ("ridge", RidgeClassifier()), ("nb", GaussianNB())]
    one = CFEnsembleClassifier(estimators, cv=3, random_state=0, n_jobs=1).fit(X, y)
    two = CFEnsembleClassifier(estimators, cv=3, random_state=0, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(one.predict_proba(X), two.predict_proba(X))
    restored = pickle.loads(pickle.dumps(one))
    np.testing.assert_array_equal(restored.predict_proba(X), one.predict_proba(X))


def test_pipeline_base_estimator_with_decision_function():
    X, y = _binary()
    pipe = make_pipeline(StandardScaler(), LinearSVC())
    weights = np.ones(len(y))
    clf = CFEnsembleClassifier([("svc", pipe), ("nb", GaussianNB())], cv=3,
                               random_state=0).fit(X, y, sample_weight=weights)
    assert clf.stack_method_[0] == "decision_function"
    assert clf.score(X, y) > 0.7


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
@pytest.mark.parametrize("bad, match", [
    (PredictOnly(), r"'bad' \(PredictOnly\) has neither predict_proba nor decision_function"),
    (LinearRegression(), r"'bad' \(LinearRegression\) is not a classifier.*Use a classifier"),
])
def test_estimators_without_scores_are_errors(Estimator, bad, match):
    X, y = _binary()
    with pytest.raises(ValueError, match=match):
        Estimator([("nb", GaussianNB()), ("bad", bad)], cv=3).fit(X, y)


def test_classifier_feature_names_out():
    X, y = _binary()
    estimators = [("svc", LinearSVC()), ("nb", GaussianNB()), ("drop_me", "drop")]
    clf = CFEnsembleClassifier(estimators, cv=3, random_state=0).fit(X, y)
    assert clf.get_feature_names_out().tolist() == ["cfensembleclassifier_svc",
                                                    "cfensembleclassifier_nb"]
    X3, y3 = _multiclass()
    clf3 = clone(clf).fit(X3, y3)
    assert clf3.get_feature_names_out().tolist() == [
        f"cfensembleclassifier_{name}{k}" for name in ("svc", "nb") for k in range(3)]
    assert clf3.transform(X3).shape == (len(X3), 6)


def test_classifier_transform_is_in_sample_and_the_fit_matrix_is_not():
    """fit_transform is StackingClassifier's fit().transform(): the refit base
    estimators' predictions, in-sample for the training rows; the matrix the
    combiner is fitted on is the out-of-fold one."""
    X, y = make_classification(200, 5, n_informative=3, flip_y=0.25, random_state=0)
    named = [("memorizer", OneNNScorer()), ("nb", GaussianNB())]
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    clf = CFEnsembleClassifier(named, cv=cv, combiner="cf", random_state=0)
    in_sample = clf.fit_transform(X, y)
    np.testing.assert_array_equal(in_sample, clf.transform(X))
    assert np.mean((in_sample[:, 0] > 0.5) == y) == 1.0
    out_of_fold = fit_base_layer(named, X, y, list(cv.split(X, y)), n_classes=2, n_jobs=None,
                                 verbose=0)[0]
    assert np.mean((out_of_fold[:, 0] > 0.5) == y) < 0.85
