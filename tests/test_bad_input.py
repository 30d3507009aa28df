"""The bad-input table: every case is a clear error, a warning that says what happened, or a fit.

Walked for both estimators and both backends (torch cases skip without torch).
"""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GroupKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.utils._param_validation import InvalidParameterError

from skcfe import CFEnsembleClassifier, CFEnsembleTransformer

from .conftest import BACKENDS, light_estimators

rng = np.random.default_rng(0)
X = rng.normal(size=(60, 4))
Y = np.r_[np.zeros(40, int), np.ones(20, int)]
X[Y == 1] += 1.0


class WrongColumns(ClassifierMixin, BaseEstimator):
    """predict_proba with one column too many."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_) + 1), 1.0 / (len(self.classes_) + 1))


class ReturnsNaN(WrongColumns):
    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_)), np.nan)


class FitReturnsNone(GaussianNB):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)


class NotAnEstimator:
    def predict_proba(self, X):  # pragma: no cover - never called
        return X


class LabelsOnly(ClassifierMixin, BaseEstimator):
    """A classifier with neither predict_proba nor decision_function."""

    def fit(self, X, y):  # pragma: no cover - never called
        return self

    def predict(self, X):  # pragma: no cover - never called
        return np.zeros(len(X))


def nb():
    return [("nb", GaussianNB())]


# (case id, constructor parameters, y, fit keyword arguments, error type, message)
ERRORS = [
    ("marker int, string labels", {"unlabeled_label": -1}, np.where(Y == 1, "yes", "no"), {},
     ValueError, r"unlabeled_label=-1 is of type int but the labels in y are strings"),
    ("marker str, numeric labels", {"unlabeled_label": "unk"}, Y, {},
     ValueError, r"unlabeled_label='unk' is of type str but the labels in y are numbers"),
    ("marker, mixed labels", {"unlabeled_label": -1}, np.array(list(Y[:-1]) + ["x"], object), {},
     ValueError, "y mixes string and non-string labels"),
    ("wrong predict_proba columns", {"estimators": nb() + [("bad", WrongColumns())]}, Y, {},
     ValueError, r"Base estimator 'bad': predict_proba returned shape \(\d+, 3\), but 2 classes"),
    ("predict_proba NaN", {"estimators": nb() + [("nan", ReturnsNaN())]}, Y, {},
     ValueError, "Base estimator 'nan': predict_proba returned NaN or infinity"),
    ("entry None", {"estimators": nb() + [("none", None)]}, Y, {},
     ValueError, "Base estimator 'none' is None; each entry of 'estimators' must be"),
    ("entry string", {"estimators": nb() + [("s", "passthrough")]}, Y, {},
     ValueError, "Base estimator 's' is 'passthrough'"),
    ("entry not an estimator", {"estimators": nb() + [("obj", NotAnEstimator())]}, Y, {},
     ValueError, r"Base estimator 'obj' \(NotAnEstimator\) is not a scikit-learn estimator"),
    ("entry a regressor", {"estimators": nb() + [("lin", LinearRegression())]}, Y, {},
     ValueError, r"Base estimator 'lin' \(LinearRegression\) is not a classifier"),
    ("entry without scores", {"estimators": nb() + [("lab", LabelsOnly())]}, Y, {},
     ValueError, r"'lab' \(LabelsOnly\) has neither predict_proba nor decision_function"),
    ("all dropped", {"estimators": [("nb", "drop")]}, Y, {},
     ValueError, "All estimators are dropped"),
    ("estimators not pairs", {"estimators": [GaussianNB()]}, Y, {},
     ValueError, r"Invalid 'estimators': expected a non-empty list of \(name, estimator\)"),
    ("multilabel y", {}, np.column_stack([Y, 1 - Y]), {},
     ValueError, r"y has shape \(60, 2\): multilabel and multi-output targets are not supported"),
    ("continuous y", {}, np.linspace(0, 1, 60), {},
     ValueError, "Unknown label type: continuous"),
    ("one class", {}, np.zeros(60, int), {},
     ValueError, "needs labeled rows of at least 2 classes; got only one class: 0"),
    ("NaN in y", {}, np.where(Y == 1, np.nan, 0.0), {},
     ValueError, "Input y contains NaN or infinity"),
    ("every row unlabeled", {"unlabeled_label": -1}, np.full(60, -1), {},
     ValueError, r"Every row is unlabeled \(y == -1\)"),
    ("negative sample_weight", {}, Y, {"sample_weight": -np.ones(60)},
     ValueError, "Negative values in data passed to `sample_weight`"),
    ("zero sample_weight", {}, Y, {"sample_weight": np.zeros(60)},
     ValueError, "Sample weights must contain at least one non-zero number"),
    ("rho out of range", {"rho": 2.0}, Y, {},
     InvalidParameterError,
     r"The 'rho' parameter of \w+ must be a float in the range \[0.0, 1.0\]"),
    ("unknown backend", {"backend": "gpu"}, Y, {},
     InvalidParameterError, "The 'backend' parameter"),
    ("confidence callable wrong shape", {"confidence": lambda R: np.ones(3)}, Y, {},
     ValueError, r"The confidence callable <lambda> returned shape \(3,\)"),
    ("confidence callable negative", {"confidence": lambda R: -np.ones_like(R)}, Y, {},
     ValueError, "returned negative or non-finite values"),
    ("precomputed out of [0, 1]", {"estimators": "precomputed"}, Y, {"X": np.full((60, 2), 2.0)},
     ValueError, r"must\s+lie in \[0, 1\]; got values in \[2, 2\]"),
    ("precomputed row without prediction", {"estimators": "precomputed"}, Y,
     {"X": np.r_[np.full((1, 2), np.nan), np.full((59, 2), 0.5)]},
     ValueError, r"Row 0 of X has no prediction at all \(1 such rows\)"),
    ("precomputed infinity", {"estimators": "precomputed"}, Y, {"X": np.full((60, 2), np.inf)},
     ValueError, "X holds infinity"),
    # bool is an int in Python: True would unlabel class 1, or mean one factor
    ("unlabeled_label a bool", {"unlabeled_label": True}, Y, {},
     InvalidParameterError, (r"The 'unlabeled_label' parameter of \w+ must be None, an int "
                             r"\(not a bool\) or an instance of 'str'. Got True")),
    ("latent_dim a bool", {"latent_dim": True}, Y, {},
     InvalidParameterError, (r"The 'latent_dim' parameter of \w+ must be an int in the range "
                             r"\[1, inf\) \(not a bool\) or None. Got True")),
    ("mixed labels, int first", {}, np.array(list(Y[:-1]) + ["x"], object), {},
     ValueError, "y mixes string and non-string labels; use one type for every label,"),
    ("mixed labels, str first", {}, np.array(["x"] + list(Y[1:]), object), {},
     ValueError, "y mixes string and non-string labels; use one type for every label,"),
    ("y one short", {}, Y[:-1], {},
     ValueError, "y has 59 entries but X has 60 rows"),
    ("sample_weight one short", {}, Y, {"sample_weight": np.ones(59)},
     ValueError, "sample_weight has 59 entries but X has 60 rows"),
    ("groups one short", {"cv": GroupKFold(3)}, Y, {"groups": np.arange(59) % 5},
     ValueError, "groups has 59 entries but X has 60 rows"),
    ("groups a scalar", {"cv": GroupKFold(3)}, Y, {"groups": 3},
     ValueError, r"groups must be an array-like of shape \(n_samples,\) = \(60,\)"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
@pytest.mark.parametrize("case, params, y, fit_kw, error, message", ERRORS,
                         ids=[case[0] for case in ERRORS])
def test_bad_input_is_a_clear_error(Estimator, backend, case, params, y, fit_kw, error, message):
    params = {"estimators": light_estimators(), "cv": 3, "backend": backend, **params}
    fit_kw = dict(fit_kw)
    X_fit = fit_kw.pop("X", X)
    with pytest.raises(error, match=message):
        Estimator(**params).fit(X_fit, y, **fit_kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_latent_dim_above_the_columns_is_capped_with_a_warning(Estimator, backend):
    est = Estimator(light_estimators(), cv=3, latent_dim=2000, backend=backend, max_iter=20)
    with pytest.warns(UserWarning, match="latent_dim=2000 is more than the 2 columns"):
        est.fit(X, Y)
    assert est.classifier_factors_.shape == (2, 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_drop_works_as_in_stacking(Estimator, backend):
    est = Estimator(light_estimators() + [("gone", "drop")], cv=3, backend=backend).fit(X, Y)
    assert est.named_estimators_["gone"] == "drop"
    assert len(est.estimators_) == 2


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_base_estimator_whose_fit_returns_none_is_stored_fitted(Estimator):
    est = Estimator([("none", FitReturnsNone())] + light_estimators(), cv=3).fit(X, Y)
    assert isinstance(est.named_estimators_["none"], FitReturnsNone)
    assert est.named_estimators_["none"].theta_.shape == (2, 4)


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_predict_errors(Estimator):
    est = Estimator(light_estimators(), cv=3).fit(X, Y)
    method = est.predict_proba if Estimator is CFEnsembleClassifier else est.transform
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
        method(X[:, :3])
    pre = Estimator("precomputed").fit(rng.random((60, 2)), Y)
    method = pre.predict_proba if Estimator is CFEnsembleClassifier else pre.transform
    with pytest.raises(ValueError, match="X has 3 columns, but .* on 2"):
        method(rng.random((4, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_scalar_sample_weight_weights_every_row_alike(Estimator, backend):
    # As scikit-learn's _check_sample_weight: a float is that weight for every row.
    est = Estimator(light_estimators(), cv=3, backend=backend, random_state=0, max_iter=20)
    scalar = est.fit(X, Y, sample_weight=2.0).coef_.copy()
    array = est.fit(X, Y, sample_weight=np.full(len(Y), 2.0)).coef_
    np.testing.assert_allclose(scalar, array)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_refit_without_column_names_forgets_feature_names_in(Estimator, backend):
    pd = pytest.importorskip("pandas")
    est = Estimator(light_estimators(), cv=3, backend=backend, random_state=0, max_iter=20)
    est.fit(pd.DataFrame(X, columns=list("abcd")), Y)
    assert list(est.feature_names_in_) == list("abcd")
    est.fit(X, Y)
    assert not hasattr(est, "feature_names_in_")
    est.predict(X) if hasattr(est, "predict") else est.transform(X)  # no name warning


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_get_params_changes_no_state(Estimator):
    random_state = np.random.RandomState(0)
    est = Estimator(random_state=random_state)
    first = est.get_params()["forest__random_state"]
    assert est.get_params()["forest__random_state"] == first
    # the user's generator did not advance
    assert random_state.randint(2**31) == np.random.RandomState(0).randint(2**31)
    # the listed seed is the one fit would draw first, and set_params keeps it
    expected = np.random.RandomState(0)
    est = Estimator(random_state=expected)
    listed = est.get_params()["forest__random_state"]
    est.set_params(forest__max_depth=3)
    assert dict(est.estimators)["forest"].random_state == listed


@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_get_params_with_an_invalid_random_state_does_not_raise(Estimator):
    est = Estimator(random_state=-np.inf)
    params = est.get_params()
    assert "forest__random_state" not in params and params["random_state"] == -np.inf
    assert est.set_params(rho=0.3).rho == 0.3
    with pytest.raises(InvalidParameterError, match="The 'random_state' parameter"):
        est.fit(X, Y)


def _precomputed_with_empty_columns():
    """Binary R with column 1 all NaN and column 2 observed on one labeled row only,
    and a 3-class R whose second model's group of columns is all NaN."""
    gen = np.random.default_rng(1)
    y = (gen.random(150) < 0.4).astype(int)
    R = np.clip(0.3 * y[:, None] + 0.35 + gen.normal(0, 0.2, (150, 4)), 0, 1)
    R[:, 1] = np.nan
    R[1:, 2] = np.nan
    y3 = gen.integers(0, 3, 150)
    R3 = gen.dirichlet(np.ones(3), size=(150, 2)).reshape(150, 6)
    R3[:, 3:] = np.nan
    return [(R, y), (R3, y3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("Estimator", [CFEnsembleClassifier, CFEnsembleTransformer])
def test_precomputed_column_without_observations_fits(Estimator, backend):
    # A column with no observation carries no information: zero confidence, factor 0
    # through the ridge (ALS), and every output finite; no LinAlgError.
    for R, y in _precomputed_with_empty_columns():
        est = Estimator("precomputed", backend=backend, random_state=0, max_iter=30)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(R, y)
        out = est.predict_proba(R) if Estimator is CFEnsembleClassifier else est.transform(R)
        assert np.isfinite(out).all()
        assert np.isfinite(est.classifier_factors_).all()
        if backend == "als":
            empty = np.flatnonzero(np.isnan(R).all(axis=0))
            np.testing.assert_allclose(est.classifier_factors_[empty], 0.0, atol=1e-12)
