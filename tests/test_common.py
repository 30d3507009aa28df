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
    # Listed with or without torch: without it, each of its checks is a reported skip.
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
    if getattr(estimator, "backend", "als") == "torch" and not TORCH_BACKEND:
        pytest.skip("torch is not installed: the backend='torch' estimator checks do not run")
    check(estimator)


def _public_callables():
    from skcfe import (
        SelectionDisplay,
        default_estimators,
        focal_loss,
        focal_loss_gradient,
        focal_posterior_correction,
        model_library,
    )

    methods = {
        CFEnsembleClassifier: ["fit", "predict", "predict_proba", "predict_log_proba",
                               "decision_function", "transform", "get_feature_names_out",
                               "get_params", "set_params", "get_metadata_routing"],
        CFEnsembleTransformer: ["fit", "fit_transform", "transform", "get_feature_names_out",
                                "get_params", "set_params", "get_metadata_routing"],
        SelectionDisplay: ["__init__", "from_estimator", "plot"],
    }
    for cls, names in methods.items():
        for name in names:
            if hasattr(cls, name):
                yield f"{cls.__name__}.{name}", getattr(cls, name)
    for func in (default_estimators, model_library, focal_loss, focal_loss_gradient,
                 focal_posterior_correction):
        yield func.__name__, func


@pytest.mark.parametrize("name, func", list(_public_callables()),
                         ids=[name for name, _ in _public_callables()])
def test_public_api_is_annotated(name, func):
    """skcfe ships py.typed: its public signatures carry type hints."""
    import inspect
    import typing

    signature = inspect.signature(func)
    missing = [p.name for p in signature.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type hint: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    typing.get_type_hints(func)  # every hint resolves
