"""Row blocks and tasks in threads, each with one BLAS thread (skcfe/_threads.py)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from skcfe import CFEnsembleClassifier
from skcfe._threads import blas_threads, map_in_threads

from .conftest import light_estimators


@pytest.fixture
def two_blas_threads():
    with threadpool_limits(2):
        if blas_threads() < 2:
            pytest.skip("BLAS runs one thread here")
        yield


def test_map_in_threads_returns_in_task_order_with_one_blas_thread(two_blas_threads):
    seen = []

    def task(i, x):
        seen.append(blas_threads())
        return i, float(np.sum(np.full((40, 40), x) @ np.full((40, 40), x)))

    out = map_in_threads(task, [(i, 0.5 * i) for i in range(12)])
    assert [i for i, _ in out] == list(range(12))
    np.testing.assert_allclose([v for _, v in out], [40**3 * (0.5 * i) ** 2 for i in range(12)])
    assert seen and set(seen) == {1}
    assert blas_threads() == 2  # restored


def test_selection_results_do_not_depend_on_the_threads(multiclass_data):
    """With n_jobs=None the selection's fits run in as many threads as BLAS may use:
    one (threadpool_limits(1)) and two give bitwise the same model."""
    X, y = multiclass_data
    fits = []
    for limit in (1, 2):
        with threadpool_limits(limit):
            fits.append(CFEnsembleClassifier(light_estimators(), cv=3, random_state=0).fit(X, y))
    for key in ("pooled_test_score", "split0_test_score", "weight"):
        np.testing.assert_array_equal(fits[0].selection_results_[key],
                                      fits[1].selection_results_[key])
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))


def test_selection_runs_its_fits_in_threads_with_n_jobs_none(multiclass_data, monkeypatch):
    """n_jobs=None: the (candidate, fold) fits go to map_in_threads; an explicit
    n_jobs goes to joblib as before."""
    import skcfe._selection as selection

    calls = []
    monkeypatch.setattr(selection, "map_in_threads",
                        lambda func, tasks: calls.append(len(tasks)) or
                        [func(*task) for task in tasks])
    X, y = multiclass_data
    clf = CFEnsembleClassifier(light_estimators(), cv=3, random_state=0).fit(X, y)
    assert calls == [5 * len(clf.selection_results_["candidate"])]
    CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, n_jobs=1).fit(X, y)
    assert len(calls) == 1
