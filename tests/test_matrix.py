"""Out-of-fold and refit probability matrices."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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
