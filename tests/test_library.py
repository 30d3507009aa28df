"""model_library: the large base-estimator library."""

import numpy as np
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import has_fit_parameter

from skcfe import CFEnsembleClassifier, default_estimators, model_library
from skcfe._library import MAX_LIBRARY_SIZE


def params(estimators):
    """Comparable parameters of (name, estimator) pairs (reprs: estimators inside Pipelines)."""
    return [(name, {k: repr(v) for k, v in est.get_params().items()}) for name, est in estimators]


def seeds(estimators):
    return {name: est.get_params()["random_state"] for name, est in estimators
            if "random_state" in est.get_params()}


@pytest.fixture(scope="module")
def small_data():
    return make_classification(n_samples=160, n_features=6, n_informative=4, weights=[0.8],
                               random_state=0)


@pytest.mark.parametrize("size", [5, 20, 60])
def test_documented_sizes(size):
    assert MAX_LIBRARY_SIZE == 60
    assert len(model_library(size, random_state=0)) == size


@pytest.mark.parametrize("size", [0, 61, 2.5, "20"])
def test_size_out_of_range_is_an_error(size):
    with pytest.raises(InvalidParameterError, match="size"):
        model_library(size)


def test_names_are_unique():
    names = [name for name, _ in model_library(60, random_state=0)]
    assert len(set(names)) == len(names)


def test_every_estimator_has_predict_proba():
    for name, est in model_library(60, random_state=0):
        assert hasattr(est, "predict_proba"), name


def test_sizes_are_nested_and_start_with_the_default_set():
    full = params(model_library(60, random_state=3))
    assert params(model_library(20, random_state=3)) == full[:20]
    assert params(model_library(5, random_state=3)) == full[:5]
    assert params(model_library(5, random_state=3)) == params(default_estimators(3))


def test_every_family_is_in_the_20_model_library():
    kinds = {type(est[-1] if isinstance(est, Pipeline) else est).__name__
             for _, est in model_library(20, random_state=0)}
    assert kinds >= {"LogisticRegression", "KNeighborsClassifier", "DecisionTreeClassifier",
                     "RandomForestClassifier", "ExtraTreesClassifier",
                     "HistGradientBoostingClassifier", "GaussianNB", "BernoulliNB"}


def test_same_random_state_gives_identical_models():
    assert params(model_library(60, random_state=7)) == params(model_library(60, random_state=7))
    rng_a, rng_b = np.random.RandomState(7), np.random.RandomState(7)
    assert params(model_library(60, rng_a)) == params(model_library(60, rng_b))


def test_different_random_states_give_different_seeds():
    a, b = seeds(model_library(60, random_state=0)), seeds(model_library(60, random_state=1))
    assert a.keys() == b.keys() and len(a) > 30
    assert all(a[name] != b[name] for name in a)
    # and within one library every randomized model has its own seed
    assert len(set(a.values())) == len(a)


def test_forests_run_on_one_thread_beyond_the_default_set():
    for name, est in model_library(60, random_state=0)[5:]:
        if isinstance(est, (RandomForestClassifier, ExtraTreesClassifier)):
            assert est.n_jobs == 1, name


def test_every_model_fits_and_predicts_probabilities(small_data):
    X, y = small_data
    for name, est in model_library(60, random_state=0):
        proba = est.fit(X, y).predict_proba(X)
        assert proba.shape == (len(X), 2), name
        assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0), name


def test_works_inside_cfensemble(small_data):
    X, y = small_data
    clf = CFEnsembleClassifier(model_library(20, random_state=0), cv=3, random_state=0)
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    assert len(clf.estimators_) == 20
    assert proba.shape == (len(X), 2) and np.all(np.isfinite(proba))
    assert clf.score(X, y) > 0.8


def test_sample_weight_without_routing_names_the_models_that_refuse_it(small_data):
    X, y = small_data
    clf = CFEnsembleClassifier(model_library(10, random_state=0), cv=3, combiner="cf")
    with pytest.raises((TypeError, ValueError), match="KNeighborsClassifier"):
        clf.fit(X, y, sample_weight=np.ones(len(y)))


def test_routing_requests_sample_weight_where_accepted(small_data):
    X, y = small_data
    with sklearn.config_context(enable_metadata_routing=True):
        library = model_library(60, random_state=0)
        for name, est in library:
            for step in est.named_steps.values() if isinstance(est, Pipeline) else [est]:
                if has_fit_parameter(step, "sample_weight"):
                    request = step.get_metadata_routing().fit.requests
                    assert request["sample_weight"] is True, name
        clf = CFEnsembleClassifier(model_library(10, random_state=0), cv=3, combiner="cf",
                                   random_state=0).set_fit_request(sample_weight=True)
        clf.fit(X, y, sample_weight=np.ones(len(y)))
        assert clf.predict_proba(X).shape == (len(X), 2)
