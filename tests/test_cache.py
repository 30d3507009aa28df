"""The memory= cache of the base layer (skcfe/_cache.py)."""

import numpy as np
from joblib import Memory
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
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
