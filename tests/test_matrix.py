"""Out-of-fold and refit probability matrices."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, RepeatedStratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from skcfe import CFEnsembleClassifier, CFEnsembleTransformer
from skcfe._matrix import fit_estimators, oof_matrix, refit_matrix, sample_weight_params


def test_fold_missing_a_class_still_maps_columns_to_global_classes():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    y = np.array([0] * 14 + [1] * 14 + [2] * 2)  # class 2 only in the last fold
    splits = list(KFold(3).split(X))
    R = oof_matrix([("nb", GaussianNB())], X, y, splits, None, n_classes=3, n_jobs=None, verbose=0)
    assert R.shape == (30, 3)
    # Rows of the last fold were predicted by a model that never saw class 2.
    np.testing.assert_array_equal(R[20:, 2], 0.0)
    np.testing.assert_allclose(R.sum(axis=1), 1.0)
    fitted = fit_estimators([("nb", GaussianNB())], X, y, None, n_jobs=None)
    assert refit_matrix(fitted, X, 3).shape == (30, 3)


def test_binary_matrix_has_one_column_per_estimator():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), np.arange(40) % 2
    ests = [("nb", GaussianNB()), ("lr", LogisticRegression())]
    R = oof_matrix(ests, X, y, list(KFold(4).split(X)), None, n_classes=2, n_jobs=None, verbose=0)
    assert R.shape == (40, 2)
    fitted = fit_estimators(ests, X, y, None, n_jobs=None)
    np.testing.assert_allclose(refit_matrix(fitted, X, 2)[:, 1], fitted[1].predict_proba(X)[:, 1])


def test_sample_weight_is_routed_to_every_pipeline_step_that_takes_it():
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    sw = np.ones(3)
    params = sample_weight_params("lr", pipe, sw)
    assert set(params) == {"standardscaler__sample_weight", "logisticregression__sample_weight"}
    assert sample_weight_params("lr", pipe, None) == {}


def test_estimator_without_sample_weight_is_explained():
    with pytest.raises(TypeError, match="'knn' \\(KNeighborsClassifier\\) does not accept sample_weight"):
        sample_weight_params("knn", KNeighborsClassifier(), np.ones(3))
    with pytest.raises(TypeError, match="final step of its Pipeline \\(KNeighborsClassifier\\)"):
        sample_weight_params("knn", make_pipeline(StandardScaler(), KNeighborsClassifier()), np.ones(3))


# -- issue 24: cases of the base layer that were silently wrong or unclear ---------------

X24, Y24 = make_classification(150, 5, random_state=0)
E24 = [("lr", LogisticRegression()), ("nb", GaussianNB()),
       ("dt", DecisionTreeClassifier(max_depth=3, random_state=0))]
ESTIMATORS = [CFEnsembleClassifier, CFEnsembleTransformer]


class ScaledProba(GaussianNB):
    """predict_proba mapped by 3 p - 1: values outside [0, 1]."""

    def predict_proba(self, X):
        return 3 * super().predict_proba(X) - 1


class OneRowShort(GaussianNB):
    def predict_proba(self, X):
        return super().predict_proba(X)[:-1]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_cv_splits_that_leave_rows_uncovered_are_an_error(Estimator):
    idx = np.arange(150)
    cv = [(idx[50:], idx[:25]), (idx[:100], idx[100:125])]
    with pytest.raises(ValueError, match=r"partition the rows.*100 of the 150 labeled rows are "
                                         r"in no test fold of cv \(an iterable of 2 splits\)"):
        Estimator(E24, cv=cv).fit(X24, Y24)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_cv_splits_that_repeat_rows_are_an_error(Estimator):
    with pytest.raises(ValueError, match=r"150 of the 150 labeled rows are in more than one test "
                                         r"fold of cv=RepeatedStratifiedKFold"):
        Estimator(E24, cv=RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0)
                  ).fit(X24, Y24)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_predict_proba_outside_unit_interval_is_an_error(Estimator):
    with pytest.raises(ValueError, match=r"Base estimator 'scaled': predict_proba returned values "
                                         r"in \[-1, 2\], but probabilities lie in \[0, 1\]"):
        Estimator(E24 + [("scaled", ScaledProba())], cv=3).fit(X24, Y24)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_predict_proba_one_row_short_is_an_error(Estimator):
    with pytest.raises(ValueError, match=r"Base estimator 'short': predict_proba returned shape "
                                         r"\(49, 2\), but 2 classes and 50 rows of X need shape "
                                         r"\(50, 2\)"):
        Estimator(E24 + [("short", OneRowShort())], cv=3).fit(X24, Y24)


def test_predict_proba_one_row_short_at_predict_is_an_error():
    clf = CFEnsembleClassifier(E24, cv=3, combiner="cf", random_state=0).fit(X24, Y24)
    clf.estimators_[1].__class__ = OneRowShort
    with pytest.raises(ValueError, match=r"'nb': predict_proba returned shape \(9, 2\), but 2 "
                                         r"classes and 10 rows of X need shape \(10, 2\)"):
        clf.predict_proba(X24[:10])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("labels", [(0, 1), ("no", "yes")])
def test_binary_class_with_too_few_members_for_cv_is_explained(Estimator, labels):
    y = np.where(np.arange(150) < 149, labels[0], labels[1])  # one member of labels[1]
    with pytest.raises(ValueError, match=rf"class {labels[1]!r} has 1 labeled row\(s\), fewer "
                                         r"than the 3 folds of cv.*label more rows of class"):
        Estimator(E24, cv=3).fit(X24, y)


def test_class_with_fewer_members_than_folds_names_a_cv_that_works():
    y = np.where(np.arange(150) < 147, 0, 1)  # three members, all in KFold's last test fold
    with pytest.raises(ValueError, match=r"class 1 has 3 labeled row\(s\), fewer than the 5 folds"
                                         r".*Use cv=3"):
        CFEnsembleClassifier(E24, cv=KFold(5)).fit(X24, y)
