"""scikit-learn's estimator checks on every estimator and backend."""

import importlib.util

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcfe import CFEnsembleClassifier, CFEnsembleTransformer

from .conftest import HAS_TORCH, light_estimators

# The combiner selection (combiner='auto') cross-validates over rows: a row
# repeated twice can sit in an inner training fold and its validation fold at
# once, a row of weight 2 cannot, so the choice (and the fit) can differ. As
# for every estimator that cross-validates internally, weighting is not
# repeating there; with combiner='cf' the check passes (instances below).
SELECTION_XFAIL = {
    "check_sample_weight_equivalence_on_dense_data": (
        "combiner='auto' cross-validates over rows: repeated rows can share inner folds"
    ),
}


def expected_failed_checks(estimator):
    return SELECTION_XFAIL if getattr(estimator, "combiner", "cf") == "auto" else {}

TORCH_BACKEND = HAS_TORCH and importlib.util.find_spec("skcfe.backends.torch") is not None


def _instances():
    yield CFEnsembleClassifier(light_estimators(), cv=3, latent_dim=2)
    yield CFEnsembleClassifier(light_estimators(), cv=3, latent_dim=2, combiner="cf")
    yield CFEnsembleClassifier(
        light_estimators(), cv=3, latent_dim=2, focal_gamma=2.0, confidence="label_aware", rho=0.3,
        combiner="cf",
    )
    if TORCH_BACKEND:
        yield CFEnsembleClassifier(light_estimators(), cv=3, latent_dim=2, backend="torch",
                                   combiner="cf")
    # fit_transform is cross-fitted (as TargetEncoder's), so in general it differs
    # from fit().transform(), which check_transformer_general compares (atol=1e-2).
    # On that check's well-separated blobs the two agree, for these instances as
    # for TargetEncoder, so no check is expected to fail; tests/test_transformer.py
    # tests the difference where it matters.
    yield CFEnsembleTransformer(light_estimators(), cv=3, latent_dim=2)
    yield CFEnsembleTransformer(light_estimators(), cv=3, latent_dim=2, output="factors")


@parametrize_with_checks(list(_instances()), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.skipif(TORCH_BACKEND, reason="torch is installed: its checks run above")
def test_torch_checks_are_reported_as_skipped():
    pytest.skip("torch is not installed: the backend='torch' estimator checks did not run")
