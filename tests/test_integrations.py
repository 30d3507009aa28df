"""skcfe with the rest of the ecosystem: imbalanced-learn pipelines as base
estimators, and the base layer on a dask.distributed joblib backend.

Each part skips (reported) when its optional package is missing; the
``imbalanced`` and ``distributed`` extras install them.
"""

from typing import ClassVar

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.naive_bayes import GaussianNB

from skcfe import CFEnsembleClassifier

from .conftest import light_estimators


class RecordingLogisticRegression(LogisticRegression):
    """LogisticRegression that logs what each fit and predict_proba call sees.

    The log is a class attribute so that the clones fitted on each fold (and
    thrown away) still leave a trace; every test starts with ``reset``.
    """

    fit_counts: ClassVar[list] = []
    predict_rows: ClassVar[list] = []
    fit_workers: ClassVar[list] = []

    @classmethod
    def reset(cls):
        cls.fit_counts, cls.predict_rows, cls.fit_workers = [], [], []

    def fit(self, X, y, sample_weight=None):
        type(self).fit_counts.append(tuple(np.bincount(y, minlength=2)))
        type(self).fit_workers.append(_dask_worker_address())
        return super().fit(X, y, sample_weight=sample_weight)

    def predict_proba(self, X):
        type(self).predict_rows.append(np.array(X, copy=True))
        return super().predict_proba(X)


def _dask_worker_address():
    """The dask worker running this call, or None outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


@pytest.fixture
def imbalanced_data():
    X, y = make_classification(
        n_samples=240, n_features=6, n_informative=4, weights=[0.8], flip_y=0.02, random_state=3
    )
    return X[:180], y[:180], X[180:]


# -- imbalanced-learn ----------------------------------------------------------


def _sampler(kind):
    pytest.importorskip("imblearn")
    from imblearn.over_sampling import SMOTE
    from imblearn.under_sampling import RandomUnderSampler

    return {"under": RandomUnderSampler(random_state=0), "smote": SMOTE(random_state=0)}[kind]


def _imblearn_ensemble(sampler, **params):
    from imblearn.pipeline import make_pipeline

    return CFEnsembleClassifier(
        [("resampled", make_pipeline(sampler, RecordingLogisticRegression())), ("nb", GaussianNB())],
        cv=StratifiedKFold(3), random_state=0, combiner="cf", **params,
    )


@pytest.mark.parametrize("kind", ["under", "smote"])
def test_imblearn_pipeline_resamples_inside_each_fold_only(imbalanced_data, kind):
    X, y, X_new = imbalanced_data
    clf = _imblearn_ensemble(_sampler(kind))
    RecordingLogisticRegression.reset()
    clf.fit(X, y)

    # Every fit (3 folds, then the refit on all rows) saw balanced classes:
    # undersampling to the minority count of its own training rows, SMOTE up
    # to the majority count; never the rows of the fold it predicts.
    train_sets = [train for train, _ in StratifiedKFold(3).split(X, y)] + [np.arange(len(y))]
    expected = []
    for train in train_sets:
        counts = np.bincount(y[train])
        target = counts.min() if kind == "under" else counts.max()
        expected.append((target, target))
    assert sorted(RecordingLogisticRegression.fit_counts) == sorted(expected)

    # Out-of-fold predictions are not resampled: the predicted rows are the
    # original training rows, each exactly once, so R has one row per row of X.
    predicted = np.vstack(RecordingLogisticRegression.predict_rows)
    assert predicted.shape == X.shape
    np.testing.assert_array_equal(np.unique(predicted, axis=0), np.unique(X, axis=0))

    # Nor are new rows at predict time.
    RecordingLogisticRegression.reset()
    proba = clf.predict_proba(X_new)
    assert [len(rows) for rows in RecordingLogisticRegression.predict_rows] == [len(X_new)]
    assert proba.shape == (len(X_new), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X_new)) <= set(clf.classes_)


def test_grid_search_over_an_imblearn_step(imbalanced_data):
    X, y, X_new = imbalanced_data
    clf = _imblearn_ensemble(_sampler("under"))
    grid = {"resampled__randomundersampler__sampling_strategy": [0.5, 1.0]}
    search = GridSearchCV(clf, grid, cv=2, scoring="average_precision").fit(X, y)
    assert search.best_params_["resampled__randomundersampler__sampling_strategy"] in (0.5, 1.0)
    best_sampler = search.best_estimator_.named_estimators_["resampled"][0]
    assert best_sampler.sampling_strategy == search.best_params_[
        "resampled__randomundersampler__sampling_strategy"
    ]
    assert search.predict_proba(X_new).shape == (len(X_new), 2)


# -- dask ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    # Threads in this process (processes=False) start in well under a second,
    # and the estimators need no pickling round trip to reach the workers.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def test_dask_backend_fits_the_same_model(binary_data, dask_client):
    X, y = binary_data

    def ensemble(n_jobs):
        return CFEnsembleClassifier(
            light_estimators() + [("logit", RecordingLogisticRegression())], cv=3,
            n_jobs=n_jobs, random_state=0,
        )

    # The reference is the plain in-process fit: every backend must give it.
    # (n_jobs=2 on the default loky backend gives it too, but starting loky's
    # worker processes would cost this test seconds.)
    local = ensemble(n_jobs=None).fit(X, y)

    RecordingLogisticRegression.reset()
    with parallel_backend("dask"):
        remote = ensemble(n_jobs=2).fit(X, y)
    # The base layer really ran on the cluster: the three fold fits and the
    # refit of the recording estimator.
    workers = RecordingLogisticRegression.fit_workers
    assert len(workers) == 4
    assert set(workers) <= set(dask_client.scheduler_info()["workers"])

    np.testing.assert_allclose(remote.predict_proba(X), local.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(remote.classifier_factors_, local.classifier_factors_, atol=1e-10)
    # The combiner selection's level-1 fits ran there too, to the same scores.
    np.testing.assert_allclose(remote.selection_results_["pooled_test_score"],
                               local.selection_results_["pooled_test_score"], atol=1e-12)
    assert remote.combiner_ == local.combiner_
