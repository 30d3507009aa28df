"""Shared fixtures: small, fast problems and a light set of base estimators."""

import pytest
from sklearn.datasets import make_classification
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

try:
    import torch  # noqa: F401

    HAS_TORCH = True
except ImportError:
    HAS_TORCH = False

BACKENDS = ["als", pytest.param("torch", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed"))]


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    # Tiny problems run slower with several OpenMP/BLAS threads (spinning
    # workers dominate), and one thread makes timings and results stable.
    with threadpool_limits(limits=1):
        yield


def light_estimators():
    """Two fast, different base classifiers that accept sample_weight."""
    return [
        ("nb", GaussianNB()),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ]


@pytest.fixture
def binary_data():
    X, y = make_classification(
        n_samples=300, n_features=8, n_informative=4, weights=[0.8], flip_y=0.05, random_state=0
    )
    return X, y


@pytest.fixture
def multiclass_data():
    X, y = make_classification(
        n_samples=300, n_features=8, n_informative=5, n_classes=3, n_clusters_per_class=1, random_state=1
    )
    return X, y
