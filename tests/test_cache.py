"""The memory= cache of the base layer (skcfe/_cache.py)."""

import os
import warnings

import joblib
import numpy as np
import pytest
from joblib import Memory
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from skcfe import CFEnsembleClassifier, CFEnsembleTransformer


class CountingNB(GaussianNB):
    """GaussianNB that counts its fits (class attribute: clones share it)."""

    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        return super().fit(X, y, sample_weight=sample_weight)


def estimators(var_smoothing=1e-9):
    return [("nb", CountingNB(var_smoothing=var_smoothing)),
            ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]


def fits_during(callable_):
    before = CountingNB.fits
    callable_()
    return CountingNB.fits - before


def test_combiner_parameters_reuse_the_cached_base_layer(binary_data, tmp_path):
    X, y = binary_data
    make = lambda **p: CFEnsembleClassifier(estimators(), cv=3, random_state=0,
                                            memory=str(tmp_path), **p)
    first = make(focal_gamma=0.0)
    assert fits_during(lambda: first.fit(X, y)) == 4  # 3 folds + the refit
    second = make(focal_gamma=2.0, combiner="cf")
    assert fits_during(lambda: second.fit(X, y)) == 0
    uncached = CFEnsembleClassifier(estimators(), cv=3, random_state=0, focal_gamma=2.0,
                                    combiner="cf")
    assert fits_during(lambda: uncached.fit(X, y)) == 4
    np.testing.assert_allclose(second.predict_proba(X), uncached.predict_proba(X))


def test_the_key_covers_estimators_data_and_weights(binary_data, tmp_path):
    X, y = binary_data
    memory = Memory(tmp_path, verbose=0)
    base = CFEnsembleClassifier(estimators(), cv=3, random_state=0, memory=memory, combiner="cf")
    assert fits_during(lambda: base.fit(X, y)) == 4
    assert fits_during(lambda: base.fit(X, y)) == 0
    other = base.set_params(nb__var_smoothing=1e-3)
    assert fits_during(lambda: other.fit(X, y)) == 4
    assert fits_during(lambda: other.fit(X[:-1], y[:-1])) == 4
    assert fits_during(lambda: other.fit(X, y, sample_weight=np.full(len(y), 2.0))) == 4
    assert fits_during(lambda: other.set_params(cv=4).fit(X, y)) == 5


def test_grid_search_over_the_combiner_fits_the_base_layer_once_per_fold(binary_data, tmp_path):
    X, y = binary_data
    clf = CFEnsembleClassifier(estimators(), cv=3, random_state=0, memory=str(tmp_path),
                               combiner="cf")
    grid = {"focal_gamma": [0.0, 2.0], "aggregator_alpha": [1.0, 10.0]}
    search = GridSearchCV(clf, grid, cv=2)
    # 2 outer folds x 4 base fits, plus 4 for the final refit on all rows;
    # without the cache it is (4 candidates x 2 folds + 1) x 4 = 36.
    assert fits_during(lambda: search.fit(X, y)) == 12


def test_transformer_uses_the_cache_too(binary_data, tmp_path):
    X, y = binary_data
    cfe = CFEnsembleTransformer(estimators(), cv=3, random_state=0, memory=str(tmp_path))
    assert fits_during(lambda: cfe.fit(X, y)) == 4
    assert fits_during(lambda: cfe.set_params(rho=0.2).fit_transform(X, y)) == 0


def scale_fn(X):
    """Redefined under the same name by _define_scale_fn."""
    return X


def _define_scale_fn(body):
    """(Re)define the module-level function ``scale_fn``, as a notebook cell run again does."""
    namespace = {}
    exec(f"def scale_fn(X):\n    return {body}\n", namespace)  # noqa: S102
    fn = namespace["scale_fn"]
    fn.__module__ = __name__
    globals()["scale_fn"] = fn
    return fn


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_a_function_redefined_under_the_same_name_does_not_hit_the_cache(
        Estimator, binary_data, tmp_path):
    X, y = binary_data

    def make(memory):
        pipe = make_pipeline(FunctionTransformer(scale_fn), GaussianNB())
        return Estimator([("pipe", pipe), ("tree", DecisionTreeClassifier(max_depth=3,
                                                                            random_state=0))],
                         cv=3, random_state=0, memory=memory)

    def output(est):
        return est.predict_proba(X) if Estimator is CFEnsembleClassifier else est.transform(X)

    _define_scale_fn("X * 2.0")
    make(str(tmp_path)).fit(X, y)
    _define_scale_fn("X[:, 5:] * -1.0")  # the same name, other code: other features
    cached = output(make(str(tmp_path)).fit(X, y))
    np.testing.assert_allclose(cached, output(make(None).fit(X, y)))


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_a_lambda_among_the_parameters_is_an_error_naming_memory(Estimator, binary_data,
                                                                  tmp_path):
    X, y = binary_data
    pipe = make_pipeline(FunctionTransformer(lambda Z: Z * 2), GaussianNB())
    est = Estimator([("p", pipe)] + estimators(), cv=3, random_state=0, memory=str(tmp_path))
    with pytest.raises(ValueError, match=r"memory= cannot cache the base layer: base estimator "
                       r"'p' \(Pipeline\) .*'p__functiontransformer__func' is a lambda"):
        est.fit(X, y)
    # without memory the lambda is fine
    est.set_params(memory=None).fit(X, y)


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_a_cache_file_replaced_by_another_pickle_is_refit(Estimator, binary_data, tmp_path):
    X, y = binary_data
    est = Estimator(estimators(), cv=3, random_state=0, memory=str(tmp_path))
    expected = est.fit(X, y).coef_.copy()
    (output,) = tmp_path.glob("**/base_layer/*/output.pkl")
    joblib.dump({"not": "a base layer"}, output)
    with pytest.warns(UserWarning, match="holds an entry for this base layer that is not one"):
        assert fits_during(lambda: est.fit(X, y)) == 4
    np.testing.assert_allclose(est.coef_, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fits_during(lambda: est.fit(X, y)) == 0  # the entry was rewritten


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_an_unusable_cache_directory_warns_and_fits_uncached(Estimator, binary_data, tmp_path):
    X, y = binary_data
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    locations = [blocker / "cache"]  # a directory under a file: unusable even for root
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        read_only = tmp_path / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
        locations.append(read_only)
    for location in locations:
        est = Estimator(estimators(), cv=3, random_state=0, memory=str(location))
        with pytest.warns(UserWarning, match="the cache directory cannot be used"):
            assert fits_during(lambda est=est: est.fit(X, y)) == 4


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_memory_with_the_default_set_and_no_seed_warns(Estimator, tmp_path):
    X, y = make_classification(60, 4, random_state=0)
    fast = {"cv": 2, "memory": str(tmp_path), "combiner": "cf"} if (
        Estimator is CFEnsembleClassifier) else {"cv": 2, "memory": str(tmp_path)}
    with pytest.warns(UserWarning, match="the cache never hits"):
        Estimator(**fast).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        Estimator(random_state=0, **fast).fit(X, y)
        Estimator(estimators(), **fast).fit(X, y)  # an explicit list: the user's seeds
