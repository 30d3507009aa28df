"""scikit-learn's estimator checks on every estimator and backend."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skcfe import CFEnsembleClassifier

from .conftest import light_estimators

# Every check passes: none is expected to fail.
EXPECTED_FAILED_CHECKS = {}


def _instances():
    yield CFEnsembleClassifier(light_estimators(), cv=3, latent_dim=2)
    yield CFEnsembleClassifier(
        light_estimators(), cv=3, latent_dim=3, focal_gamma=2.0, confidence="label_aware", rho=0.3
    )


@parametrize_with_checks(list(_instances()), expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
