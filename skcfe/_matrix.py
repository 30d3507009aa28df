"""The classifier-by-instance probability matrix R.

Training rows get out-of-fold probabilities (``cross_val_predict`` with the
same folds for every base estimator, as ``StackingClassifier`` does); the base
estimators are then refit on every labeled row and give R for any other row.
"""

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter


def sample_weight_params(name, estimator, sample_weight):
    """Fit parameters that hand ``sample_weight`` to a base estimator.

    A Pipeline gets the weights in every step whose ``fit`` accepts them (a
    scaler's statistics are then weighted like the model's loss), so that
    weighting a row stays the same as repeating it.
    """
    if sample_weight is None:
        return {}
    if isinstance(estimator, Pipeline):
        steps = [(step, est) for step, est in estimator.steps if est not in (None, "passthrough")]
        if not has_fit_parameter(steps[-1][1], "sample_weight"):
            raise TypeError(
                f"Base estimator {name!r}: the final step of its Pipeline "
                f"({type(steps[-1][1]).__name__}) does not accept sample_weight. Fit "
                "without sample_weight or use estimators whose fit accepts it."
            )
        return {
            f"{step}__sample_weight": sample_weight
            for step, est in steps
            if has_fit_parameter(est, "sample_weight")
        }
    if not has_fit_parameter(estimator, "sample_weight"):
        raise TypeError(
            f"Base estimator {name!r} ({type(estimator).__name__}) does not accept "
            "sample_weight in fit. Fit without sample_weight or replace that estimator."
        )
    return {"sample_weight": sample_weight}


def proba_columns(proba, n_classes, name="?"):
    """Columns of R from one estimator's ``predict_proba`` output (checked)."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != n_classes:
        raise ValueError(
            f"Base estimator {name!r}: predict_proba returned shape {proba.shape}, but "
            f"{n_classes} classes need shape ({proba.shape[0] if proba.ndim else '?'}, "
            f"{n_classes}): one column per class, in the order of its classes_."
        )
    if not np.all(np.isfinite(proba)):
        raise ValueError(
            f"Base estimator {name!r}: predict_proba returned NaN or infinity; check that "
            "estimator (and its input) before combining it."
        )
    return proba[:, 1:] if n_classes == 2 else proba


def oof_matrix(named_estimators, X, y, splits, sample_weight, *, n_classes, n_jobs, verbose):
    """Out-of-fold probability matrix of the training rows.

    Parameters
    ----------
    named_estimators : list of (str, estimator)
        Unfitted base estimators ('drop' already removed).
    X : array-like of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Encoded labels ``0 .. n_classes - 1``.
    splits : list of (train, test) index arrays
        The same folds for every estimator; the test folds partition the rows.
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    R : ndarray of shape (n_samples, n_columns)
    """
    blocks = Parallel(n_jobs=n_jobs)(
        delayed(cross_val_predict)(
            clone(est),
            X,
            y,
            cv=splits,
            method="predict_proba",
            params=sample_weight_params(name, est, sample_weight),
            n_jobs=n_jobs,
            verbose=verbose,
        )
        for name, est in named_estimators
    )
    return np.hstack([
        proba_columns(block, n_classes, name) for block, (name, _) in zip(blocks, named_estimators)
    ])


def _fit_one(estimator, X, y, params):
    # The fitted object is the estimator itself, whatever its fit returns.
    estimator.fit(X, y, **params)
    return estimator


def fit_estimators(named_estimators, X, y, sample_weight, *, n_jobs):
    """Clone and fit every base estimator on all rows given."""
    return Parallel(n_jobs=n_jobs)(
        delayed(_fit_one)(clone(est), X, y, sample_weight_params(name, est, sample_weight))
        for name, est in named_estimators
    )


def refit_matrix(estimators, X, n_classes, names=None):
    """Probability matrix of any rows from the fitted base estimators."""
    names = names or [type(est).__name__ for est in estimators]
    return np.hstack([
        proba_columns(est.predict_proba(X), n_classes, name)
        for est, name in zip(estimators, names)
    ])
