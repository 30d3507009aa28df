"""Tests of the synthetic problem generators in skcfe.datasets."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    log_loss,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcfe.datasets import make_imbalanced_classification, make_probability_matrix


def _groups(R, n_classes):
    """Per-classifier probability groups, shape (n, m, K), binary included."""
    if n_classes == 2:
        return np.stack([1.0 - R, R], axis=-1)
    return R.reshape(R.shape[0], -1, n_classes)


def _mean_error_correlation(R, y):
    errors = R - y[:, None]
    corr = np.corrcoef(errors, rowvar=False)
    m = corr.shape[0]
    return (corr.sum() - m) / (m * (m - 1))


# ---------------------------------------------------------------------------
# make_probability_matrix
# ---------------------------------------------------------------------------


def test_binary_shapes_and_ranges():
    data = make_probability_matrix(300, 7, random_state=0)
    assert data.R.shape == (300, 7)
    assert data.R.dtype == np.float64
    assert np.all((data.R >= 0) & (data.R <= 1))
    assert data.y.shape == (300,)
    assert np.issubdtype(data.y.dtype, np.integer)
    assert set(np.unique(data.y)) == {0, 1}
    assert data.labeled.dtype == bool and data.labeled.shape == (300,)
    assert data.posterior.shape == (300, 2)
    assert data.n_classes == 2
    assert data.classifier_quality.shape == (7,)
    assert np.all((data.classifier_quality > 0) & (data.classifier_quality <= 1))


def test_multiclass_column_groups():
    n, m, K = 400, 5, 4
    data = make_probability_matrix(n, m, n_classes=K, positive_rate=0.1, random_state=1)
    assert data.R.shape == (n, m * K)
    assert np.all((data.R >= 0) & (data.R <= 1))
    groups = data.R.reshape(n, m, K)
    np.testing.assert_allclose(groups.sum(axis=2), 1.0, atol=1e-12)
    # Column j*K + k must be classifier j's P(class k): on average it is larger
    # for rows of class k than for the others.
    for j in range(m):
        for k in range(K):
            col = data.R[:, j * K + k]
            assert col[data.y == k].mean() > col[data.y != k].mean()
    assert set(np.unique(data.y)) == set(range(K))


@pytest.mark.parametrize(
    "make, kwargs, field",
    [
        (make_probability_matrix, {"n_samples": 200}, "R"),
        (make_probability_matrix, {"n_samples": 200, "n_classes": 3, "positive_rate": 0.2}, "R"),
        (make_imbalanced_classification, {"n_samples": 200}, "X"),
    ],
)
def test_seeding(make, kwargs, field):
    a = make(**kwargs, random_state=3)
    b = make(**kwargs, random_state=3)
    c = make(**kwargs, random_state=4)
    for key in (field, "y", "labeled", "posterior"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a[field], c[field])
    assert not np.array_equal(a.y, c.y)
    # A Generator or RandomState seeds it too, reproducibly.
    d = make(**kwargs, random_state=np.random.default_rng(5))
    e = make(**kwargs, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(d[field], e[field])
    f = make(**kwargs, random_state=np.random.RandomState(5))
    g = make(**kwargs, random_state=np.random.RandomState(5))
    np.testing.assert_array_equal(f[field], g[field])


_R_BASE = {
    "n_samples": 300,
    "n_classifiers": 6,
    "n_classes": 2,
    "positive_rate": 0.1,
    "quality": 0.7,
    "diversity": 0.5,
    "n_subgroups": 8,
    "labeled_fraction": 0.5,
    "random_state": 0,
}


@pytest.mark.parametrize(
    "param, value",
    [
        ("n_samples", 301),
        ("n_classifiers", 7),
        ("n_classes", 3),
        ("positive_rate", 0.2),
        ("quality", 0.9),
        ("diversity", 0.8),
        ("n_subgroups", 3),
        ("labeled_fraction", 0.7),
        ("random_state", 1),
    ],
)
def test_every_parameter_changes_probability_matrix(param, value):
    base = make_probability_matrix(**_R_BASE)
    changed = make_probability_matrix(**{**_R_BASE, param: value})
    assert _R_BASE[param] != value
    differs = [not np.array_equal(base[key], changed[key]) for key in ("R", "y", "labeled")]
    assert any(differs), f"changing {param} alone left R, y and labeled unchanged"


def test_adding_classifiers_keeps_existing_ones():
    small = make_probability_matrix(200, 3, random_state=0)
    large = make_probability_matrix(200, 6, random_state=0)
    np.testing.assert_array_equal(small.R, large.R[:, :3])
    np.testing.assert_array_equal(small.y, large.y)


@pytest.mark.parametrize("n_samples", [1000, 997])
@pytest.mark.parametrize("positive_rate", [0.02, 0.1, 0.33, 0.5])
def test_positive_rate_is_realized(n_samples, positive_rate):
    data = make_probability_matrix(n_samples, 3, positive_rate=positive_rate, random_state=0)
    assert abs(data.y.mean() - positive_rate) <= 1.0 / n_samples
    features = make_imbalanced_classification(
        n_samples, 5, positive_rate=positive_rate, random_state=0
    )
    assert abs(features.y.mean() - positive_rate) <= 1.0 / n_samples


def test_multiclass_rates():
    n, K = 1000, 4
    data = make_probability_matrix(n, 2, n_classes=K, positive_rate=0.1, random_state=0)
    freq = np.bincount(data.y, minlength=K) / n
    np.testing.assert_allclose(freq, [0.3, 0.3, 0.3, 0.1], atol=1.0 / n)


def test_higher_quality_gives_higher_auc():
    means = []
    for quality in (0.2, 0.5, 0.8, 1.0):
        data = make_probability_matrix(2000, 10, quality=quality, random_state=0)
        aucs = [roc_auc_score(data.y, data.R[:, j]) for j in range(10)]
        means.append(np.mean(aucs))
    assert np.all(np.diff(means) > 0.01), means
    assert means[0] > 0.5


def test_higher_diversity_gives_less_correlated_errors():
    corr = [
        _mean_error_correlation(
            make_probability_matrix(2000, 10, diversity=d, random_state=0).R,
            make_probability_matrix(2000, 10, diversity=d, random_state=0).y,
        )
        for d in (0.0, 0.5, 1.0)
    ]
    assert np.all(np.diff(corr) < -0.02), corr


def test_zero_diversity_means_identical_errors():
    # With fully shared noise every binary classifier's score is a monotone
    # function of one common view, so all rankings agree exactly.
    data = make_probability_matrix(500, 6, diversity=0.0, random_state=0)
    ranks = np.argsort(np.argsort(data.R, axis=0), axis=0)
    assert np.all(ranks == ranks[:, [0]])
    other = make_probability_matrix(500, 6, diversity=0.3, random_state=0)
    ranks = np.argsort(np.argsort(other.R, axis=0), axis=0)
    assert not np.all(ranks == ranks[:, [0]])


def test_classifiers_differ_in_calibration():
    # Noise-free classifiers share one view, so differing calibration slopes
    # (logistic regression of y on each classifier's logit) come from their
    # temperatures alone: some are over-confident, some under-confident.
    data = make_probability_matrix(4000, 8, quality=1.0, random_state=0)
    slopes = []
    for j in range(8):
        z = logit(np.clip(data.R[:, [j]], 1e-12, 1 - 1e-12))
        slopes.append(LogisticRegression(C=1e6).fit(z, data.y).coef_[0, 0])
    assert max(slopes) / min(slopes) > 1.5, slopes


def test_mean_of_base_predictions_is_not_perfect():
    data = make_probability_matrix(random_state=0)
    mean_ap = average_precision_score(data.y, data.R.mean(axis=1))
    bayes_ap = average_precision_score(data.y, data.posterior[:, 1])
    assert data.y.mean() + 0.2 < mean_ap < 0.9
    # The oracle is clearly better, so there is something to gain.
    assert bayes_ap > mean_ap + 0.05


def test_learned_weighting_beats_the_mean():
    # Classifiers differ in quality and calibration, so logistic regression on
    # the logits of R beats the plain mean on held-out rows.
    gains = []
    for seed in range(3):
        data = make_probability_matrix(2000, random_state=seed)
        Z = logit(np.clip(data.R, 1e-9, 1 - 1e-9))
        Z_tr, Z_te, y_tr, y_te, _, R_te = train_test_split(
            Z, data.y, data.R, test_size=0.5, stratify=data.y, random_state=0
        )
        model = LogisticRegression(max_iter=1000).fit(Z_tr, y_tr)
        learned = average_precision_score(y_te, model.predict_proba(Z_te)[:, 1])
        gains.append(learned - average_precision_score(y_te, R_te.mean(axis=1)))
    assert np.mean(gains) > 0.02, gains


@pytest.mark.parametrize("make", [make_probability_matrix, make_imbalanced_classification])
@pytest.mark.parametrize("n_samples", [50, 333, 1000])
@pytest.mark.parametrize("labeled_fraction", [0.01, 0.05, 0.25, 0.5, 1.0])
def test_labeled_mask(make, n_samples, labeled_fraction):
    data = make(n_samples, 10, labeled_fraction=labeled_fraction, random_state=2)
    expected = max(1, round(labeled_fraction * n_samples))
    assert data.labeled.sum() == expected
    if expected >= 2:
        # Stratified: every class has a labeled row.
        assert set(np.unique(data.y[data.labeled])) == set(np.unique(data.y))


def test_labeled_mask_is_stratified():
    data = make_probability_matrix(2000, 2, positive_rate=0.1, labeled_fraction=0.3, random_state=0)
    assert data.labeled.sum() == 600
    assert data.y[data.labeled].sum() == 60


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (make_probability_matrix, {}),
        (make_probability_matrix, {"n_classes": 3, "positive_rate": 0.15}),
        (make_imbalanced_classification, {}),
        (make_imbalanced_classification, {"n_classes": 3, "positive_rate": 0.15}),
        (make_imbalanced_classification, {"label_noise": 0.2}),
    ],
)
def test_posterior_is_valid_and_informative(make, kwargs):
    data = make(4000, random_state=0, **kwargs)
    K = data.n_classes
    P = data.posterior
    assert P.shape == (4000, K)
    assert np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    # The Bayes rule beats chance: it is more accurate than always answering
    # the majority class, and the posterior ranks and scores far better than
    # the prior.
    freq = np.bincount(data.y, minlength=K) / data.y.size
    assert accuracy_score(data.y, P.argmax(axis=1)) > freq.max() + 0.01
    assert log_loss(data.y, P) < log_loss(data.y, np.tile(freq, (data.y.size, 1))) - 0.05
    if K == 2:
        assert roc_auc_score(data.y, P[:, 1]) > 0.8
    else:
        assert roc_auc_score(data.y, P, multi_class="ovr") > 0.8
    # A true posterior is calibrated on average: E[p_k] = P(y = k).
    np.testing.assert_allclose(P.mean(axis=0), freq, atol=0.02)


def test_posterior_is_the_bayes_optimum():
    # No fitted model can beat the exact posterior on held-out rows; a wrong
    # "posterior" (e.g. forgetting the prior or a mixture term) would lose.
    data = make_imbalanced_classification(6000, 10, n_informative=3, random_state=0)
    X_tr, X_te, y_tr, y_te, _, P_te = train_test_split(
        data.X, data.y, data.posterior, test_size=0.5, random_state=0
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    fitted = model.fit(X_tr, y_tr).predict_proba(X_te)
    assert log_loss(y_te, P_te) < log_loss(y_te, fitted)
    assert roc_auc_score(y_te, P_te[:, 1]) > roc_auc_score(y_te, fitted[:, 1])


# ---------------------------------------------------------------------------
# make_imbalanced_classification
# ---------------------------------------------------------------------------


def test_features_shapes():
    data = make_imbalanced_classification(500, 12, n_informative=4, random_state=0)
    assert data.X.shape == (500, 12)
    assert np.all(np.isfinite(data.X))
    assert data.y.shape == (500,) and set(np.unique(data.y)) == {0, 1}
    assert data.posterior.shape == (500, 2)
    assert data.informative.shape == (4,)
    multi = make_imbalanced_classification(500, 6, n_classes=5, positive_rate=0.1, random_state=0)
    assert multi.posterior.shape == (500, 5)
    assert set(np.unique(multi.y)) == set(range(5))


_X_BASE = {
    "n_samples": 300,
    "n_features": 8,
    "n_classes": 2,
    "positive_rate": 0.1,
    "class_sep": 1.0,
    "n_informative": 4,
    "n_subgroups": 3,
    "label_noise": 0.0,
    "labeled_fraction": 0.5,
    "random_state": 0,
}


@pytest.mark.parametrize(
    "param, value",
    [
        ("n_samples", 301),
        ("n_features", 9),
        ("n_classes", 3),
        ("positive_rate", 0.2),
        ("class_sep", 2.0),
        ("n_informative", 3),
        ("n_subgroups", 2),
        ("label_noise", 0.2),
        ("labeled_fraction", 0.7),
        ("random_state", 1),
    ],
)
def test_every_parameter_changes_features(param, value):
    base = make_imbalanced_classification(**_X_BASE)
    changed = make_imbalanced_classification(**{**_X_BASE, param: value})
    differs = [
        not np.array_equal(base[key], changed[key]) for key in ("X", "y", "labeled", "posterior")
    ]
    assert any(differs), f"changing {param} alone changed nothing"


def test_class_sep_makes_the_problem_easier():
    aucs = []
    for class_sep in (0.5, 1.0, 2.0):
        data = make_imbalanced_classification(3000, 10, class_sep=class_sep, random_state=0)
        aucs.append(roc_auc_score(data.y, data.posterior[:, 1]))
    assert np.all(np.diff(aucs) > 0), aucs


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _invalid(function, name, requirement):
    """scikit-learn's InvalidParameterError message for parameter ``name``."""
    return rf"The '{name}' parameter of {function.__name__} must be {requirement}"


MPM, MIC = make_probability_matrix, make_imbalanced_classification


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (MPM, {"n_samples": 0}, _invalid(MPM, "n_samples", r"an int in the range \[1, inf\)")),
        (MPM, {"n_samples": 10.0}, _invalid(MPM, "n_samples", "an int")),
        (MPM, {"n_classifiers": 0}, _invalid(MPM, "n_classifiers", r"an int in the range \[1")),
        (MPM, {"n_classes": 1}, _invalid(MPM, "n_classes", r"an int in the range \[2, inf\)")),
        (MPM, {"n_subgroups": 0}, _invalid(MPM, "n_subgroups", r"an int in the range \[1")),
        (MPM, {"n_subgroups": 2.5}, _invalid(MPM, "n_subgroups", "an int")),
        (MPM, {"positive_rate": 0.7}, _invalid(MPM, "positive_rate", r".*\(0.0, 0.5\]")),
        (MPM, {"positive_rate": 0.0}, _invalid(MPM, "positive_rate", r".*\(0.0, 0.5\]")),
        (
            MPM,
            {"n_classes": 4, "positive_rate": 0.3},
            r"positive_rate must be in \(0, 1/n_classes\] = \(0, 0.25\].*rarest class",
        ),
        (MPM, {"quality": 0.0}, _invalid(MPM, "quality", r"a float in the range \(0.0, 1.0\]")),
        (MPM, {"quality": 1.5}, _invalid(MPM, "quality", r"a float in the range \(0.0, 1.0\]")),
        (MPM, {"quality": float("nan")}, _invalid(MPM, "quality", r"a float in the range")),
        (MPM, {"quality": "high"}, _invalid(MPM, "quality", "a float")),
        (
            MPM,
            {"diversity": -0.1},
            _invalid(MPM, "diversity", r"a float in the range \[0.0, 1.0\]"),
        ),
        (MPM, {"diversity": 1.1}, _invalid(MPM, "diversity", r"a float in the range \[0.0, 1.0\]")),
        (MPM, {"labeled_fraction": 0.0}, _invalid(MPM, "labeled_fraction", r".*\(0.0, 1.0\]")),
        (MPM, {"labeled_fraction": 1.2}, _invalid(MPM, "labeled_fraction", r".*\(0.0, 1.0\]")),
        (
            MPM,
            {"random_state": -1},
            _invalid(MPM, "random_state", r"an int in the range \[0, inf\)"),
        ),
        (MPM, {"random_state": "seed"}, _invalid(MPM, "random_state", ".*Generator' or None")),
        (MIC, {"n_features": 0}, _invalid(MIC, "n_features", r"an int in the range \[1, inf\)")),
        (
            MIC,
            {"n_features": 4, "n_informative": 5},
            "n_informative must not exceed n_features",
        ),
        (MIC, {"n_informative": 0}, _invalid(MIC, "n_informative", r"an int in the range \[1")),
        (MIC, {"class_sep": 0.0}, _invalid(MIC, "class_sep", r".*\(0.0, 1000.0\]")),
        (MIC, {"label_noise": 1.0}, _invalid(MIC, "label_noise", r".*\[0.0, 1.0\)")),
        (MIC, {"positive_rate": 0.6}, _invalid(MIC, "positive_rate", r".*\(0.0, 0.5\]")),
        (
            MIC,
            {"n_classes": 3, "positive_rate": 0.4},
            r"positive_rate must be in \(0, 1/n_classes\] = \(0, 0.333333\]",
        ),
        (MIC, {"n_classes": 1}, _invalid(MIC, "n_classes", r"an int in the range \[2, inf\)")),
        (MIC, {"labeled_fraction": -1}, _invalid(MIC, "labeled_fraction", "a float")),
    ],
)
def test_validation_errors(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_error_message_says_how_to_fix():
    """The rule scikit-learn's constraints cannot state (it needs n_classes) gives a hint."""
    with pytest.raises(ValueError) as info:
        make_probability_matrix(n_classes=5, positive_rate=0.3)
    message = str(info.value)
    assert "0.3" in message and re.search(r"Pass e\.g\. 0\.1", message)


@pytest.mark.parametrize("make", [MPM, MIC])
def test_numpy_scalars_draw_the_same_data_as_python_scalars(make):
    """Parameters are converted to Python scalars: a float32 rate changes no draw."""
    python = make(50, 6, positive_rate=0.25, random_state=0)
    numpy = make(
        np.int64(50), np.int32(6), positive_rate=np.float32(0.25), random_state=np.int64(0)
    )
    for key, value in python.items():
        np.testing.assert_array_equal(np.asarray(numpy[key]), np.asarray(value))


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------


@st.composite
def _matrix_params(draw):
    n_classes = draw(st.integers(2, 5))
    return {
        "n_samples": draw(st.integers(1, 60)),
        "n_classifiers": draw(st.integers(1, 6)),
        "n_classes": n_classes,
        "positive_rate": draw(st.floats(1e-6, 1.0 / n_classes, exclude_min=False, allow_nan=False)),
        "quality": draw(st.floats(1e-300, 1.0, allow_nan=False)),
        "diversity": draw(st.floats(0.0, 1.0, allow_nan=False)),
        "n_subgroups": draw(st.integers(1, 20)),
        "labeled_fraction": draw(st.floats(1e-6, 1.0, allow_nan=False)),
        "random_state": draw(st.integers(0, 2**32 - 1)),
    }


@settings(max_examples=60, deadline=None)
@given(_matrix_params())
def test_any_valid_parameters_give_valid_probabilities(params):
    data = make_probability_matrix(**params)
    n, m, K = params["n_samples"], params["n_classifiers"], params["n_classes"]
    assert data.R.shape == (n, m if K == 2 else m * K)
    assert np.all(np.isfinite(data.R))
    assert np.all((data.R >= 0) & (data.R <= 1))
    np.testing.assert_allclose(_groups(data.R, K).sum(axis=2), 1.0, atol=1e-9)
    assert np.all((data.y >= 0) & (data.y < K))
    assert data.labeled.sum() == max(1, round(params["labeled_fraction"] * n))
    assert np.all(np.isfinite(data.posterior))
    np.testing.assert_allclose(data.posterior.sum(axis=1), 1.0, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    n_samples=st.integers(1, 60),
    n_features=st.integers(1, 8),
    n_classes=st.integers(2, 4),
    class_sep=st.floats(1e-3, 10.0),
    n_subgroups=st.integers(1, 5),
    label_noise=st.floats(0.0, 0.99),
    random_state=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_any_valid_parameters_give_valid_features(
    n_samples, n_features, n_classes, class_sep, n_subgroups, label_noise, random_state, data
):
    n_informative = data.draw(st.integers(1, n_features))
    positive_rate = data.draw(st.floats(1e-3, 1.0 / n_classes))
    out = make_imbalanced_classification(
        n_samples,
        n_features,
        n_classes=n_classes,
        positive_rate=positive_rate,
        class_sep=class_sep,
        n_informative=n_informative,
        n_subgroups=n_subgroups,
        label_noise=label_noise,
        random_state=random_state,
    )
    assert out.X.shape == (n_samples, n_features)
    assert np.all(np.isfinite(out.X))
    assert np.all((out.y >= 0) & (out.y < n_classes))
    assert np.all(np.isfinite(out.posterior)) and np.all(out.posterior >= 0)
    np.testing.assert_allclose(out.posterior.sum(axis=1), 1.0, atol=1e-9)
