"""The classifier-by-instance probability matrix R.

Training rows get out-of-fold probabilities (the same folds for every base
estimator, as ``StackingClassifier`` does with ``cross_val_predict``); the
base estimators are then refit on every labeled row and give R for any other
row. Every fold fit and every refit is one joblib task, so the whole base
layer spreads over any joblib backend, and ``verbose`` reports each with its
time.
"""

import copy
import time
import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.validation import _check_method_params, check_is_fitted, has_fit_parameter


def is_frozen(estimator):
    """Whether ``fit`` leaves the estimator as it is (a FrozenEstimator, or a Pipeline ending in one).

    Such an estimator keeps the classes it was fitted on (the user's labels),
    not the encoded labels skcfe fits base estimators on, and takes no
    sample weights.
    """
    if isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return isinstance(estimator, FrozenEstimator)


def sample_weight_params(name, estimator, sample_weight):
    """Fit parameters that hand ``sample_weight`` to a base estimator (routing disabled).

    A Pipeline gets the weights in every step whose ``fit`` accepts them (a
    scaler's statistics are then weighted like the model's loss), so that
    weighting a row stays the same as repeating it. A frozen estimator gets
    none: its ``fit`` changes nothing, and the weights still reach skcfe's
    own combiner.
    """
    if sample_weight is None or is_frozen(estimator):
        return {}
    if isinstance(estimator, Pipeline):
        steps = [(step, est) for step, est in estimator.steps if est not in (None, "passthrough")]
        if not has_fit_parameter(steps[-1][1], "sample_weight"):
            raise TypeError(
                f"Base estimator {name!r}: the final step of its Pipeline "
                f"({type(steps[-1][1]).__name__}) does not accept sample_weight. Fit "
                "without sample_weight or use estimators whose fit accepts it (with "
                "sklearn.set_config(enable_metadata_routing=True), an estimator can "
                "decline it: set_fit_request(sample_weight=False))."
            )
        return {
            f"{step}__sample_weight": sample_weight
            for step, est in steps
            if has_fit_parameter(est, "sample_weight")
        }
    if not has_fit_parameter(estimator, "sample_weight"):
        raise TypeError(
            f"Base estimator {name!r} ({type(estimator).__name__}) does not accept "
            "sample_weight in fit. Fit without sample_weight or replace that estimator "
            "(with sklearn.set_config(enable_metadata_routing=True), an estimator can "
            "decline it: set_fit_request(sample_weight=False))."
        )
    return {"sample_weight": sample_weight}


def cv_splits(cv, X, y, split_params=None, random_state=None):
    """Train/test folds of ``cv`` over the rows of ``X`` (StratifiedKFold for an int).

    ``split_params`` go to the splitter's ``split`` (``groups`` for GroupKFold
    and its kin). A shuffling splitter without a seed is seeded from
    ``random_state`` (on a copy: the user's splitter is left as given), so an
    int ``random_state`` gives identical refits.
    """
    cv = check_cv(cv, y, classifier=True)
    if getattr(cv, "shuffle", False) and getattr(cv, "random_state", 0) is None:
        cv = copy.copy(cv)
        cv.random_state = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    return list(cv.split(X, y, **(split_params or {})))


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


def _labels(estimator, n_classes, classes, as_given):
    """Labels the estimator's ``classes_`` are drawn from.

    skcfe fits base estimators on the encoded labels ``0 .. n_classes - 1``;
    an estimator used as given (``cv='prefit'``, FrozenEstimator) keeps the
    user's labels ``classes``.
    """
    if classes is not None and (as_given or is_frozen(estimator)):
        return np.asarray(classes)
    return np.arange(n_classes)


def _global_columns(proba, estimator_classes, labels, name):
    """``predict_proba`` columns placed at their class in ``labels`` (0 for a class never seen)."""
    proba = np.asarray(proba, dtype=float)
    if estimator_classes is None:
        return proba
    estimator_classes = np.asarray(estimator_classes)
    if np.array_equal(estimator_classes, labels):
        return proba
    position = {label: j for j, label in enumerate(labels.tolist())}
    unknown = [c for c in estimator_classes.tolist() if c not in position]
    if unknown:
        raise ValueError(
            f"Base estimator {name!r} predicts classes {unknown} that y does not have "
            f"(its classes_: {estimator_classes.tolist()}; y's: {labels.tolist()}). A "
            "base estimator used as given (cv='prefit' or FrozenEstimator) must have "
            "been fitted on the labels of y."
        )
    if proba.ndim != 2 or proba.shape[1] != len(estimator_classes):
        return proba  # proba_columns reports the shape
    full = np.zeros((proba.shape[0], len(labels)))
    full[:, [position[c] for c in estimator_classes.tolist()]] = proba
    return full


def _progress(message, seconds):
    """One 70-character line of progress, as Pipeline(verbose=True) prints (joblib's time format)."""
    elapsed = f"{seconds / 60:4.1f}min" if seconds > 60 else f" {seconds:5.1f}s"
    end = f" {message}, total={elapsed}"
    return "[skcfe] " + "." * max(70 - len("[skcfe] ") - len(end), 3) + end


def _fit_predict(estimator, X, y, train, test, params, message, verbose):
    """Fit a clone on the ``train`` rows (None: all rows) and predict the ``test`` rows.

    Returns the fitted estimator itself, whatever its ``fit`` returns, with
    the probabilities of the test rows (None without test rows). A fold fit
    returns the estimator's ``classes_`` instead, since the fold model is
    thrown away (no need to ship it back from a worker).
    """
    start = time.perf_counter()
    estimator = clone(estimator)
    if train is None:
        estimator.fit(X, y, **params)
    else:
        estimator.fit(_safe_indexing(X, train), y[train],
                      **_check_method_params(X, params, indices=train))
    result = estimator, None
    if test is not None:
        result = getattr(estimator, "classes_", None), estimator.predict_proba(_safe_indexing(X, test))
    if verbose:
        print(_progress(message, time.perf_counter() - start), flush=True)
    return result


def _fold_tasks(named_estimators, X, y, splits, fit_params, verbose):
    fit_params = fit_params or {}
    return [
        delayed(_fit_predict)(
            est, X, y, train, test, fit_params.get(name, {}),
            f"{name}: fold {k} of {len(splits)}", verbose,
        )
        for name, est in named_estimators
        for k, (train, test) in enumerate(splits, start=1)
    ]


def _refit_tasks(named_estimators, X, y, fit_params, verbose):
    fit_params = fit_params or {}
    return [
        delayed(_fit_predict)(
            est, X, y, None, None, fit_params.get(name, {}),
            f"{name}: refit on all {len(y)} rows", verbose,
        )
        for name, est in named_estimators
    ]


def _assemble(named_estimators, results, n_rows, splits, n_classes, classes):
    """R from the fold predictions, estimator by estimator (results in _fold_tasks' order)."""
    blocks = []
    results = iter(results)
    for name, est in named_estimators:
        labels = _labels(est, n_classes, classes, as_given=False)
        block = np.zeros((n_rows, n_classes))
        for _, test in splits:
            fold_classes, proba = next(results)
            if fold_classes is not None and len(fold_classes) != n_classes:
                warnings.warn(
                    f"Number of classes in training fold ({len(fold_classes)}) does not "
                    f"match total number of classes ({n_classes}) for base estimator "
                    f"{name!r}: its out-of-fold probability of a class it never saw is 0. "
                    "Use folds that hold every class (StratifiedKFold, fewer splits).",
                    RuntimeWarning,
                )
            proba = _global_columns(proba, fold_classes, labels, name)
            if proba.ndim != 2 or proba.shape[1] != n_classes:
                proba_columns(proba, n_classes, name)  # raises with the shape
            block[test] = proba
        blocks.append(proba_columns(block, n_classes, name))
    return np.hstack(blocks)


def oof_matrix(named_estimators, X, y, splits, fit_params=None, *, n_classes, n_jobs, verbose,
               classes=None):
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
    fit_params : dict of str to dict, or None
        Fit parameters of each base estimator by name (as routed); those of
        the rows' length are indexed to each fold's training rows.
    classes : ndarray or None
        The user's labels, which frozen estimators predict.

    Returns
    -------
    R : ndarray of shape (n_samples, n_columns)
    """
    results = Parallel(n_jobs=n_jobs)(_fold_tasks(named_estimators, X, y, splits, fit_params,
                                                  verbose))
    return _assemble(named_estimators, results, len(y), splits, n_classes, classes)


def fit_estimators(named_estimators, X, y, fit_params=None, *, n_jobs, verbose=0):
    """Clone and fit every base estimator on all rows given (the fitted objects, in order)."""
    results = Parallel(n_jobs=n_jobs)(_refit_tasks(named_estimators, X, y, fit_params, verbose))
    return [est for est, _ in results]


def fit_base_layer(named_estimators, X, y, splits, fit_params=None, *, n_classes, n_jobs,
                   verbose, classes=None):
    """:func:`oof_matrix` and :func:`fit_estimators` as one batch of joblib tasks.

    Returns ``(R, estimators)``. One batch keeps every worker busy: the k
    fold fits and the refit of each estimator run side by side.
    """
    folds = _fold_tasks(named_estimators, X, y, splits, fit_params, verbose)
    results = Parallel(n_jobs=n_jobs)(
        folds + _refit_tasks(named_estimators, X, y, fit_params, verbose)
    )
    R = _assemble(named_estimators, results[:len(folds)], len(y), splits, n_classes, classes)
    return R, [est for est, _ in results[len(folds):]]


def check_prefit(named_estimators):
    """The base estimators of ``cv='prefit'``, checked fitted and returned as they are."""
    for name, est in named_estimators:
        try:
            check_is_fitted(est)
        except NotFittedError as exc:
            raise NotFittedError(
                f"cv='prefit' uses the base estimators as they are, but {name!r} "
                f"({type(est).__name__}) is not fitted. Fit it first, or give an int, a "
                "splitter or an iterable of splits as cv to let skcfe fit it out of fold."
            ) from exc
    return [est for _, est in named_estimators]


def refit_matrix(estimators, X, n_classes, names=None, *, classes=None, as_given=False):
    """Probability matrix of any rows from the fitted base estimators.

    ``classes`` (the user's labels) maps the columns of estimators used as
    given (``as_given``: ``cv='prefit'``; or frozen ones), which were fitted
    on those labels rather than on the encoded ones.
    """
    names = names or [type(est).__name__ for est in estimators]
    return np.hstack([
        proba_columns(
            _global_columns(est.predict_proba(X), getattr(est, "classes_", None),
                            _labels(est, n_classes, classes, as_given), name),
            n_classes, name,
        )
        for est, name in zip(estimators, names)
    ])
