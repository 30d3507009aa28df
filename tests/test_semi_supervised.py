"""Semi-supervised fitting: rows marked by ``unlabeled_label``.

Unlabeled rows never reach a base estimator's fit nor the aggregator's loss;
they get their probability-matrix rows from base estimators fitted on the
labeled rows and take part in the factorization.
"""

from typing import ClassVar

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

import skcfe._cf
from skcfe import CFEnsembleClassifier, CFEnsembleTransformer
from skcfe.backends import get_backend

from .conftest import BACKENDS

N_LABELED = 60


class SpyNB(GaussianNB):
    """GaussianNB that records every row and label it is fitted on."""

    fits: ClassVar[list] = []

    def fit(self, X, y, sample_weight=None):
        X = np.asarray(X)
        SpyNB.fits.append(
            {
                "rows": {row.tobytes() for row in X},
                "labels": set(np.asarray(y).tolist()),
                "n_weights": None if sample_weight is None else len(sample_weight),
            }
        )
        return super().fit(X, y, sample_weight=sample_weight)


class SpyTree(DecisionTreeClassifier):
    """DecisionTreeClassifier that records every row it is fitted on."""

    fits: ClassVar[list] = []

    def fit(self, X, y, sample_weight=None, check_input=True):
        SpyTree.fits.append({row.tobytes() for row in np.asarray(X)})
        return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)


@pytest.fixture
def spies():
    SpyNB.fits.clear()
    SpyTree.fits.clear()
    yield [("nb", SpyNB()), ("tree", SpyTree(max_depth=3, random_state=0))]
    SpyNB.fits.clear()
    SpyTree.fits.clear()


@pytest.fixture
def partly_labeled():
    """300 rows in random order, the first N_LABELED labeled, the rest marked -1."""
    X, y = make_classification(
        n_samples=300, n_features=8, n_informative=4, weights=[0.7], flip_y=0.05, random_state=0
    )
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    y_semi = y.copy()
    y_semi[N_LABELED:] = -1
    return X, y, y_semi


def make(estimators=None, cls=CFEnsembleClassifier, **params):
    params.setdefault("cv", 3)
    params.setdefault("latent_dim", 2)
    params.setdefault("random_state", 0)
    params.setdefault("unlabeled_label", -1)
    if cls is CFEnsembleClassifier:
        params.setdefault("combiner", "cf")  # these tests are about the factorization
    if estimators is None:
        estimators = [
            ("nb", GaussianNB()),
            ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ]
    return cls(estimators, **params)


@pytest.mark.parametrize("cls", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_unlabeled_rows_never_reach_a_base_estimator_fit(partly_labeled, spies, cls):
    X, _, y_semi = partly_labeled
    labeled_rows = {row.tobytes() for row in X[:N_LABELED]}
    unlabeled_rows = {row.tobytes() for row in X[N_LABELED:]}
    weights = np.linspace(0.5, 1.5, len(X))

    est = make(spies, cls=cls)
    if cls is CFEnsembleTransformer:
        est.fit_transform(X, y_semi, sample_weight=weights)
    else:
        est.fit(X, y_semi, sample_weight=weights)

    # 3 cross-validation fits and the final refit, per base estimator.
    assert len(SpyNB.fits) == len(SpyTree.fits) == 4
    for fit in SpyNB.fits:
        assert not fit["rows"] & unlabeled_rows
        assert fit["rows"] <= labeled_rows
        assert -1 not in fit["labels"]
        assert fit["n_weights"] == len(fit["rows"])
    for rows in SpyTree.fits:
        assert not rows & unlabeled_rows
    # The folds partition the labeled rows; the final refit sees all of them.
    assert SpyNB.fits[-1]["rows"] == labeled_rows
    assert SpyTree.fits[-1] == labeled_rows


def test_unlabeled_rows_enter_the_factorization_only(partly_labeled, monkeypatch):
    X, y, y_semi = partly_labeled
    seen = {}
    real_get_backend = get_backend

    class Recorder:
        def __init__(self, backend):
            self.backend = backend

        def fit(self, problem, settings, rng):
            seen["problem"] = problem
            return self.backend.fit(problem, settings, rng)

    monkeypatch.setattr(skcfe._cf, "get_backend", lambda name: Recorder(real_get_backend(name)))
    clf = make(confidence="label_aware", use_class_weights=True).fit(X, y_semi)
    problem = seen["problem"]

    unlabeled = slice(N_LABELED, None)
    assert problem.R.shape == (len(X), 2)
    np.testing.assert_array_equal(problem.labeled, y_semi != -1)
    # No supervised weight and no label targets on unlabeled rows ...
    np.testing.assert_array_equal(problem.sample_weight[unlabeled], 0.0)
    np.testing.assert_array_equal(problem.T[unlabeled], 0.0)
    # ... label-free confidence for them, even under a label-aware strategy ...
    np.testing.assert_array_equal(problem.C[unlabeled], problem.C_free[unlabeled])
    # ... but full weight in the factorization, and probabilities from the
    # base estimators fitted on the labeled rows.
    np.testing.assert_array_equal(problem.row_weight, 1.0)
    expected = np.column_stack([est.predict_proba(X[unlabeled])[:, 1] for est in clf.estimators_])
    np.testing.assert_array_equal(problem.R[unlabeled], expected)
    # Class weights count labeled rows only.
    counts = np.bincount(y[:N_LABELED])
    np.testing.assert_allclose(clf.class_weight_, N_LABELED / (2 * counts))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unlabeled_rows_change_the_factorization(partly_labeled, backend):
    X, y, y_semi = partly_labeled
    semi = make(backend=backend).fit(X, y_semi)
    labeled_only = make(backend=backend).fit(X[:N_LABELED], y_semi[:N_LABELED])

    # Same base estimators (fitted on the same labeled rows) ...
    for a, b in zip(semi.estimators_, labeled_only.estimators_):
        np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    # ... but the unlabeled rows reshape the classifier factors.
    assert semi.classifier_factors_.shape == labeled_only.classifier_factors_.shape
    assert not np.allclose(semi.classifier_factors_, labeled_only.classifier_factors_, atol=1e-3)
    assert not np.allclose(semi.predict_proba(X), labeled_only.predict_proba(X), atol=1e-4)
    assert set(semi.predict(X)) <= {0, 1}
    # A sanity bound (60 labeled rows, two light base estimators): 0.73-0.74 measured.
    assert roc_auc_score(y[N_LABELED:], semi.predict_proba(X[N_LABELED:])[:, 1]) > 0.7


def test_all_unlabeled_is_rejected(partly_labeled):
    X, _, _ = partly_labeled
    with pytest.raises(
        ValueError, match=r"Every row is unlabeled \(y == -1\); at least two classes"
    ):
        make().fit(X, np.full(len(X), -1))
    with pytest.raises(ValueError, match="Every row is unlabeled"):
        make(cls=CFEnsembleTransformer).fit_transform(X, np.full(len(X), -1))


def test_one_labeled_class_is_rejected(partly_labeled):
    X, _, y_semi = partly_labeled
    one_class = np.where(y_semi == -1, -1, 1)
    with pytest.raises(
        ValueError,
        match=r"at least 2 classes; got only one class: 1 besides the unlabeled rows \(y == -1\)",
    ):
        make().fit(X, one_class)
    labels = np.where(one_class == -1, "?", "pos")
    with pytest.raises(
        ValueError, match=r"got only one class: 'pos' besides the unlabeled rows \(y == '\?'\)"
    ):
        make(unlabeled_label="?").fit(X, labels)


def test_without_unlabeled_label_minus_one_is_an_ordinary_class(partly_labeled, spies):
    X, y, _ = partly_labeled
    y_pm = np.where(y == 1, 1, -1)
    clf = make(spies, unlabeled_label=None).fit(X, y_pm)
    np.testing.assert_array_equal(clf.classes_, [-1, 1])
    assert SpyNB.fits[-1]["rows"] == {row.tobytes() for row in X}
    assert SpyNB.fits[-1]["labels"] == {0, 1}  # encoded classes -1 and 1
    assert set(clf.predict(X)) == {-1, 1}
    assert clf.score(X, y_pm) > 0.85


def test_string_labels_with_a_string_marker(partly_labeled):
    X, _, y_semi = partly_labeled
    labels = np.array(["neg", "pos", "unknown"], dtype=object)[y_semi]  # -1 -> "unknown"
    strings = make(unlabeled_label="unknown").fit(X, labels)
    ints = make().fit(X, y_semi)
    assert strings.classes_.tolist() == ["neg", "pos"]
    np.testing.assert_allclose(strings.predict_proba(X), ints.predict_proba(X))
    assert set(strings.predict(X)) <= {"neg", "pos"}
    np.testing.assert_array_equal(strings.classifier_factors_, ints.classifier_factors_)


def test_multiclass_semi_supervised():
    X, y = make_classification(
        n_samples=300,
        n_features=8,
        n_informative=5,
        n_classes=3,
        n_clusters_per_class=1,
        random_state=1,
    )
    y_semi = y.copy()
    y_semi[90:] = -1
    clf = make(confidence="calibration").fit(X, y_semi)
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.classifier_factors_.shape == (6, 2)
    assert clf.score(X[90:], y[90:]) > 0.7


def test_transformer_with_unlabeled_rows(partly_labeled):
    X, _, y_semi = partly_labeled
    cfe = make(cls=CFEnsembleTransformer)
    out = cfe.fit_transform(X, y_semi)
    assert out.shape == (len(X), 2)
    assert cfe.classes_.tolist() == [0, 1]
    # Unlabeled rows are out of sample for the final base estimators, so their
    # cross-fitted output is simply transform(); labeled rows are out of fold.
    np.testing.assert_allclose(out[N_LABELED:], cfe.transform(X[N_LABELED:]), rtol=1e-12)
    assert not np.allclose(out[:N_LABELED], cfe.transform(X[:N_LABELED]))
    labeled_only = make(cls=CFEnsembleTransformer).fit(X[:N_LABELED], y_semi[:N_LABELED])
    assert not np.allclose(cfe.transform(X), labeled_only.transform(X), atol=1e-3)
    factors = make(cls=CFEnsembleTransformer, output="factors").fit_transform(X, y_semi)
    np.testing.assert_allclose(factors @ cfe.classifier_factors_.T, out, rtol=1e-10, atol=1e-12)
