"""The CF-Ensemble level-1 model as pure functions of the probability matrix.

``fit_cf`` runs everything after the base layer (class weights, confidence,
the backend's factorization and aggregator); ``cf_predict_proba`` maps new
rows of R to the corrected posterior. The estimators call them once on the
whole matrix; the combiner selection (``_selection.py``) calls them on the
rows of each inner fold.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from ._aggregator import aggregate, raw_to_proba
from ._confidence import (
    RowConfidence,
    apply_confidence,
    fit_confidence,
    label_targets,
    reads_labels,
)
from ._posterior import focal_posterior_correction
from .backends import Problem, Settings, TorchOptions, fold_in, get_backend

# The estimator parameters the CF model reads (the rest are the base layer's).
CF_PARAMETERS = (
    "backend", "latent_dim", "rho", "lambda_reg", "confidence", "label_aware_alpha",
    "aggregator", "aggregator_alpha", "aggregator_input", "focal_gamma", "use_class_weights",
    "posterior_correction", "max_iter", "tol", "solver", "learning_rate", "device", "verbose",
)


@dataclass(frozen=True)
class CFModel:
    """Fitted CF-Ensemble level-1 state: numpy arrays and the settings predict needs."""

    params: dict
    n_classes: int
    class_weight: np.ndarray
    confidence_state: dict
    confidence_scale: float
    classifier_factors: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    history: dict
    stop_reason: str = ""


def class_weights(y, weights, n_classes, *, balanced, classes):
    """Balanced class weights ``n / (K n_k)`` from sample weights; ones if not ``balanced``.

    scikit-learn's ``compute_class_weight('balanced')`` with sample weights,
    after a check that names the classes whose total weight is zero.
    """
    if not balanced:
        return np.ones(n_classes)
    counts = np.bincount(y, weights=weights, minlength=n_classes)
    if np.any(counts <= 0):
        missing = list(np.asarray(classes)[counts <= 0])
        raise ValueError(
            f"Classes {missing} have zero total sample_weight, so class "
            "weights n / (K n_k) are undefined; give them positive weight or set "
            "use_class_weights=False."
        )
    return compute_class_weight("balanced", classes=np.arange(n_classes), y=y,
                                sample_weight=weights)


def _observed(R):
    """Mask of the entries of R that hold a prediction (NaN marks a missing one)."""
    return ~np.isnan(R)


def _column_fill(R, observed):
    """Stand-ins of the missing entries: each column's observed mean.

    A column with no observation (every row NaN, as in an inner fold of
    the selection) carries no information: its stand-in is 0.5, with zero
    confidence like every missing entry, so the ridge keeps its factor at 0.
    """
    counts = observed.sum(axis=0)
    sums = np.where(observed, R, 0.0).sum(axis=0)
    return np.divide(sums, counts, out=np.full(R.shape[1], 0.5), where=counts > 0)


def fit_cf(R, y, labeled, weights, *, n_classes, params, seed, classes=None):
    """Fit the factorization and the aggregator on a probability matrix.

    Missing entries (NaN) get zero confidence: they neither shape the
    factors nor pull the fold-in, which completes them from the observed
    entries of their row. The backends see them filled with their column's
    mean (where only the initial factors read them).

    Parameters
    ----------
    R : ndarray of shape (n_samples, n_columns)
        Out-of-fold probabilities (labeled rows) and probabilities of the
        refit base estimators (unlabeled rows).
    y : ndarray of int, shape (n_samples,)
        Encoded labels (ignored on unlabeled rows).
    labeled : ndarray of bool, shape (n_samples,)
    weights : ndarray of shape (n_samples,)
        Sample weights.
    n_classes : int
    params : dict
        The estimator's :data:`CF_PARAMETERS`.
    seed : int
        Seeds the backend's initialization.
    classes : array-like, default=None
        Class labels, for error messages.

    Returns
    -------
    model : CFModel
    problem : Problem
        The backend's validated inputs (the transformer folds ``problem.R`` in).
    """
    classes = np.arange(n_classes) if classes is None else classes
    observed = _observed(R)
    if observed.all():
        observed = None  # nothing to mask (and no mask to hold)
    else:
        R = np.where(observed, R, _column_fill(R, observed))
    class_weight = class_weights(
        y[labeled], weights[labeled], n_classes, balanced=params["use_class_weights"],
        classes=classes,
    )
    n_estimators = R.shape[1] // (1 if n_classes == 2 else n_classes)
    T = label_targets(y, n_classes, n_estimators, labeled)
    # Each (n, q) matrix costs as much as R, so the confidence of a named
    # strategy is computed from R by rows where the backend needs it
    # (RowConfidence); a callable's, called once on the whole matrix, is
    # held. The label-free confidence is the training confidence itself
    # unless the strategy reads labels.
    C, confidence_state = fit_confidence(
        params["confidence"], R, T, labeled, weights,
        n_classes=n_classes, label_aware_alpha=params["label_aware_alpha"], observed=observed,
        by_rows=True,
    )
    C_free = C
    if reads_labels(confidence_state):
        C_free = RowConfidence(confidence_state, R, observed=observed)
    problem = Problem(
        R=R,
        C=C,
        C_free=C_free,
        T=T,
        y=y,
        labeled=labeled,
        row_weight=weights,
        sample_weight=np.where(labeled, weights * class_weight[y], 0.0),
        n_classes=n_classes,
    )
    if problem.confidence_scale <= 0:
        raise ValueError(
            "The confidence is zero on every entry of the probability matrix; a "
            "confidence callable must give some entries positive weight."
        )
    settings = Settings(
        latent_dim=params["latent_dim"] or R.shape[1],
        rho=float(params["rho"]),
        lambda_reg=float(params["lambda_reg"]),
        focal_gamma=float(params["focal_gamma"]),
        aggregator=params["aggregator"],
        aggregator_alpha=float(params["aggregator_alpha"]) / weights[labeled].sum(),
        max_iter=params["max_iter"],
        tol=float(params["tol"]),
        aggregator_input=params["aggregator_input"],
        verbose=params["verbose"],
        torch=TorchOptions(
            solver=params["solver"],
            learning_rate=float(params["learning_rate"]),
            device=params["device"],
        ),
    )
    result = get_backend(params["backend"]).fit(problem, settings, np.random.default_rng(seed))
    model = CFModel(
        params=dict(params),
        n_classes=n_classes,
        class_weight=class_weight,
        confidence_state=confidence_state,
        confidence_scale=problem.confidence_scale,
        classifier_factors=result.classifier_factors,
        coef=result.coef,
        intercept=result.intercept,
        n_iter=result.n_iter,
        converged=result.converged,
        history=result.history,
        stop_reason=result.stop_reason,
    )
    return model, problem


def cf_fold_in(model, R):
    """Instance factors of rows ``R`` (the classifier factors held fixed).

    Missing entries (NaN) get zero confidence, so a row's factors come from
    its observed entries alone.
    """
    observed = _observed(R)
    R = np.where(observed, R, 0.0)
    C = apply_confidence(model.confidence_state, R) * observed
    return fold_in(
        R, C, model.classifier_factors, model.params["lambda_reg"], model.confidence_scale
    )


def cf_complete(model, R):
    """``R`` with its missing entries (NaN) replaced by the CF reconstruction, in [0, 1]."""
    observed = _observed(R)
    if observed.all():
        return R
    R_hat = np.clip(cf_fold_in(model, R) @ model.classifier_factors.T, 0.0, 1.0)
    return np.where(observed, R, R_hat)


def cf_predict_proba(model, R, posterior_correction=None):
    """Class probabilities of rows ``R``: the corrected posterior unless switched off.

    ``posterior_correction`` overrides the fitted setting (it acts at predict
    time only, so the estimator's current value applies without a refit).
    """
    R_hat = cf_fold_in(model, R) @ model.classifier_factors.T
    params = model.params
    raw = aggregate(
        R_hat, params["aggregator"], model.coef, model.intercept, model.n_classes,
        params["aggregator_input"],
    )
    proba = raw_to_proba(raw)
    if posterior_correction is None:
        posterior_correction = params["posterior_correction"]
    if posterior_correction and params["aggregator"] == "weighted":
        proba = focal_posterior_correction(
            proba, gamma=params["focal_gamma"], class_weight=model.class_weight
        )
    return proba
