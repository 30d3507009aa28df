"""Row blocks and tasks in threads, each with one BLAS thread (skcfe/_threads.py)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from skcfe import CFEnsembleClassifier
from skcfe._threads import blas_threads, iter_row_blocks, map_row_blocks

from .conftest import light_estimators


@pytest.fixture
def two_blas_threads():
    with threadpool_limits(2):
        if blas_threads() < 2:
            pytest.skip("BLAS runs one thread here")
        yield


def test_row_blocks_return_in_block_order_with_one_blas_thread(two_blas_threads):
    seen = []

    def block(rows):
        seen.append(blas_threads())
        x = 0.5 * rows.start
        return rows.start, float(np.sum(np.full((40, 40), x) @ np.full((40, 40), x)))

    out = map_row_blocks(block, 12, 1, n_threads=2)
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
    """n_jobs=None: the (candidate, fold) fits run in threads with one BLAS thread
    each (joblib's threading backend); an explicit n_jobs goes to joblib's default."""
    import skcfe.level1.selection as selection

    backends = []
    real_parallel = selection.Parallel

    def parallel(*args, **kwargs):
        backends.append(kwargs.get("backend"))
        return real_parallel(*args, **kwargs)

    monkeypatch.setattr(selection, "Parallel", parallel)
    X, y = multiclass_data
    CFEnsembleClassifier(light_estimators(), cv=3, random_state=0).fit(X, y)
    assert backends == ["threading"]
    CFEnsembleClassifier(light_estimators(), cv=3, random_state=0, n_jobs=1).fit(X, y)
    assert backends == ["threading", None]


def test_row_blocks_in_groups_come_back_in_block_order():
    """iter_row_blocks computes a few blocks at a time (ALS's sweep sums them as they come)."""
    out = list(iter_row_blocks(lambda rows: (rows.start, rows.stop), 10, 3, n_threads=2, group=2))
    assert out == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert out == map_row_blocks(lambda rows: (rows.start, rows.stop), 10, 3, n_threads=2)
