"""scikit-learn's estimator checks on every estimator and backend."""

import importlib.util

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcfe import CFEnsembleClassifier

from .conftest import HAS_TORCH, light_estimators

# Every check passes: none is expected to fail.
EXPECTED_FAILED_CHECKS = {}

TORCH_BACKEND = HAS_TORCH and importlib.util.find_spec("skcfe.backends.torch") is not None


def _instances():
    yield CFEnsembleClassifier(light_estimators(), cv=3, latent_dim=2)
    yield CFEnsembleClassifier(
        light_estimators(), cv=3, latent_dim=3, focal_gamma=2.0, confidence="label_aware", rho=0.3
    )
    if TORCH_BACKEND:
        yield CFEnsembleClassifier(light_estimators(), cv=3, latent_dim=2, backend="torch")


@parametrize_with_checks(list(_instances()), expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.skipif(TORCH_BACKEND, reason="torch is installed: its checks run above")
def test_torch_checks_are_reported_as_skipped():
    pytest.skip("torch is not installed: the backend='torch' estimator checks did not run")
