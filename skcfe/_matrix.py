"""The classifier-by-instance probability matrix R.

Training rows get out-of-fold probabilities (the same folds for every base
estimator, as ``StackingClassifier`` does with ``cross_val_predict``); the
base estimators are then refit on every labeled row and give R for any other
row. Every fold fit and every refit is one joblib task, so the whole base
layer spreads over any joblib backend, and ``verbose`` reports each with its
time.

A base estimator without ``predict_proba`` enters through its
``decision_function`` (StackingClassifier's ``stack_method='auto'``), mapped to
probabilities by a logistic calibrator without leakage, as
CalibratedClassifierCV does: a training row's calibrated out-of-fold column
comes from a calibrator fitted on the other folds' out-of-fold scores, and new
rows go through one fitted on all of them.
"""

import copy
import time
import warnings
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._user_interface import _message_with_time
from sklearn.utils.validation import (
    _check_method_params,
    _num_samples,
    check_is_fitted,
    has_fit_parameter,
)


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


STACK_METHODS = ("predict_proba", "decision_function")


def stack_method(name, estimator):
    """The method whose output enters R: predict_proba where it exists, else decision_function.

    StackingClassifier's ``stack_method='auto'`` without its last resort,
    ``predict``: hard labels carry no ranking to factorize.
    """
    for method in STACK_METHODS:
        if hasattr(estimator, method):
            return method
    raise ValueError(
        f"Base estimator {name!r} ({type(estimator).__name__}) has neither predict_proba "
        "nor decision_function, so it gives no score to combine. Use a classifier with "
        "one of them (e.g. SVC() rather than a model that only predicts labels), or "
        "wrap it in CalibratedClassifierCV."
    )


PROBA_TOLERANCE = 1e-9  # rounding slack of predict_proba around [0, 1]


def _routed_weight(params):
    """The sample weights among a base estimator's fit parameters (a Pipeline's last step's)."""
    keys = [key for key in params if key == "sample_weight" or key.endswith("__sample_weight")]
    return params[keys[-1]] if keys else None


def fit_calibrator(scores, y, sample_weight=None):
    """Logistic map of decision scores to probabilities, fitted on ``(scores, y)``.

    Binary: Platt's sigmoid on the one score column; K classes: a multinomial
    logistic regression on the K scores (which covers a temperature and a
    bias per class). The scores are standardized first (weighted), so the
    fit does not depend on their scale (a perceptron's reach 1e5), and
    LogisticRegression's default penalty (C=1, the intercept unpenalized)
    keeps it finite when the scores separate the classes. With a single
    class in ``y`` (a fold of a tiny class) the calibrator predicts that
    class's prior.
    """
    if np.unique(y).size < 2:
        return DummyClassifier(strategy="prior").fit(scores, y, sample_weight=sample_weight)
    calibrator = make_pipeline(StandardScaler(), LogisticRegression())
    return calibrator.fit(scores, y, standardscaler__sample_weight=sample_weight,
                          logisticregression__sample_weight=sample_weight)


def calibrated_proba(calibrator, scores, n_classes):
    """``predict_proba`` of a calibrator with one column per class ``0 .. n_classes - 1``."""
    proba = calibrator.predict_proba(scores)
    classes = calibrator.classes_
    if len(classes) == n_classes:
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full


def cross_calibrate(scores, y, splits, n_classes, sample_weight=None):
    """Calibrated out-of-fold columns of the rows and the calibrator of new rows.

    The rows of the test fold k are mapped by a calibrator fitted on the
    out-of-fold scores of the other folds' rows only, so no row's label
    reaches its own column (CalibratedClassifierCV's cross-fitting); the
    returned calibrator, fitted on every row's out-of-fold scores, maps the
    refit estimator's scores of new rows.

    Returns ``(proba, calibrator)``: proba of shape (n_rows, n_classes).
    """
    proba = np.zeros((len(y), n_classes))
    for _, test in splits:
        others = np.ones(len(y), dtype=bool)
        others[test] = False
        weight = None if sample_weight is None else sample_weight[others]
        fold_calibrator = fit_calibrator(scores[others], y[others], weight)
        proba[test] = calibrated_proba(fold_calibrator, scores[test], n_classes)
    return proba, fit_calibrator(scores, y, sample_weight)


def cv_splits(cv, X, y, split_params=None, random_state=None, classes=None):
    """Train/test folds of ``cv`` over the rows of ``X`` (StratifiedKFold for an int).

    ``split_params`` go to the splitter's ``split`` (``groups`` for GroupKFold
    and its kin). A shuffling splitter without a seed is seeded from
    ``random_state`` (on a copy: the user's splitter is left as given), so an
    int ``random_state`` gives identical refits.

    The test folds must partition the rows (every row gets exactly one
    out-of-fold prediction, as ``cross_val_predict`` requires) and every
    training fold must hold two classes; ``classes`` (the user's labels of
    the encoded ``y``) name a class in the error.
    """
    given = cv
    cv = check_cv(cv, y, classifier=True)
    if getattr(cv, "shuffle", False) and getattr(cv, "random_state", 0) is None:
        cv = copy.copy(cv)
        cv.random_state = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    splits = list(cv.split(X, y, **(split_params or {})))
    _check_partition(splits, len(y), given)
    _check_fold_classes(splits, np.asarray(y), classes)
    return splits


def _describe_cv(cv, n_splits):
    if isinstance(cv, Integral) or hasattr(cv, "split"):
        return f"cv={cv!r}"
    return f"cv (an iterable of {n_splits} splits)"


def _check_partition(splits, n_rows, cv):
    """Every row in exactly one test fold (cross_val_predict's "only works for partitions")."""
    counts = np.zeros(n_rows, dtype=np.intp)
    for _, test in splits:
        test = np.asarray(test)
        np.add.at(counts, np.flatnonzero(test) if test.dtype == bool else test, 1)
    uncovered, repeated = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    if uncovered.size == 0 and repeated.size == 0:
        return
    if uncovered.size:
        problem = (
            f"{uncovered.size} of the {n_rows} labeled rows are in no test fold of "
            f"{_describe_cv(cv, len(splits))} (rows {uncovered[:5].tolist()}"
            f"{', ...' if uncovered.size > 5 else ''}), so they would get no out-of-fold "
            "prediction"
        )
    else:
        problem = (
            f"{repeated.size} of the {n_rows} labeled rows are in more than one test fold "
            f"of {_describe_cv(cv, len(splits))} (rows {repeated[:5].tolist()}"
            f"{', ...' if repeated.size > 5 else ''}), so they would get several "
            "out-of-fold predictions"
        )
    raise ValueError(
        f"The test folds of cv must partition the rows, as cross_val_predict requires: "
        f"{problem}. Use a splitter whose test folds hold every row once (KFold, "
        "StratifiedKFold, GroupKFold; not ShuffleSplit or a repeated splitter), or splits "
        "of your own that do."
    )


def _check_fold_classes(splits, y, classes):
    """Every training fold must hold two classes (a base estimator fits on it)."""
    present, counts = np.unique(y, return_counts=True)
    if present.size < 2:
        return
    for k, (train, _) in enumerate(splits, start=1):
        seen = np.unique(y[train])
        if seen.size >= 2:
            continue
        missing = [c for c in present.tolist() if c not in seen.tolist()]
        smallest = min(missing, key=lambda c: counts[present.tolist().index(c)])
        count = int(counts[present.tolist().index(smallest)])
        label = classes[smallest] if classes is not None else smallest
        label = label.item() if isinstance(label, np.generic) else label
        if count < len(splits):
            reason = (
                f"class {label!r} has {count} labeled row(s), fewer than the "
                f"{len(splits)} folds of cv, so training fold {k} holds no row of it"
            )
            remedy = (
                f"Use cv={count} (or fewer folds than the smallest class has rows), or "
                f"label more rows of class {label!r}." if count >= 2 else
                f"A class needs at least 2 labeled rows for out-of-fold predictions: label "
                f"more rows of class {label!r}, or drop its rows."
            )
        else:
            reason = f"training fold {k} of cv holds no row of class {label!r}"
            remedy = "Use folds that hold every class in training (StratifiedKFold)."
        raise ValueError(
            f"{reason}, and the base estimators would be fitted on a single class there. "
            f"{remedy}"
        )


def proba_columns(proba, n_classes, name="?", n_rows=None):
    """Columns of R from one estimator's ``predict_proba`` output (checked).

    ``n_rows``: the number of rows it was asked for (None: not checked).
    """
    proba = np.asarray(proba, dtype=float)
    rows = n_rows if n_rows is not None else (proba.shape[0] if proba.ndim else "?")
    if proba.ndim != 2 or proba.shape[1] != n_classes or proba.shape[0] != rows:
        raise ValueError(
            f"Base estimator {name!r}: predict_proba returned shape {proba.shape}, but "
            f"{n_classes} classes and {rows} rows of X need shape ({rows}, {n_classes}): "
            "one row per row of X and one column per class, in the order of its classes_."
        )
    if not np.all(np.isfinite(proba)):
        raise ValueError(
            f"Base estimator {name!r}: predict_proba returned NaN or infinity; check that "
            "estimator (and its input) before combining it."
        )
    if proba.size and (proba.min() < -PROBA_TOLERANCE or proba.max() > 1 + PROBA_TOLERANCE):
        raise ValueError(
            f"Base estimator {name!r}: predict_proba returned values in "
            f"[{proba.min():g}, {proba.max():g}], but probabilities lie in [0, 1]. Check "
            "that estimator's predict_proba; an estimator that returns scores belongs "
            "in decision_function."
        )
    return proba[:, 1:] if n_classes == 2 else proba


def score_columns(scores, estimator_classes, labels, name, n_rows):
    """One estimator's ``decision_function`` output as an (n_rows, width) array (checked).

    Width 1 for two classes (the score of ``labels[1]``), one column per
    class otherwise, as scikit-learn's decision_function returns them.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = scores.reshape(-1, 1)
    width = 1 if len(labels) == 2 else len(labels)
    if estimator_classes is not None and not np.array_equal(np.asarray(estimator_classes), labels):
        raise ValueError(
            f"Base estimator {name!r} was fitted on the classes "
            f"{np.asarray(estimator_classes).tolist()} but y has {labels.tolist()} (a training "
            "fold without some class, or an estimator used as given that was fitted on other "
            "labels), so its decision_function scores cannot be placed by class. Use folds "
            "that hold every class (StratifiedKFold, fewer splits), or give it predict_proba "
            "(CalibratedClassifierCV)."
        )
    if scores.ndim != 2 or scores.shape != (n_rows, width):
        raise ValueError(
            f"Base estimator {name!r}: decision_function returned shape {scores.shape}, but "
            f"{n_rows} rows and {len(labels)} classes need shape "
            f"({n_rows},{' ' + str(width) if width > 1 else ''}) (one score per row"
            f"{' and class' if width > 1 else ''})."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"Base estimator {name!r}: decision_function returned NaN or infinity; check "
            "that estimator (and its input) before combining it."
        )
    return scores


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


def _fit_predict(estimator, X, y, train, test, params, message, verbose, method="predict_proba"):
    """Fit a clone on the ``train`` rows (None: all rows) and predict the ``test`` rows.

    Returns the fitted estimator itself, whatever its ``fit`` returns, with
    the ``method`` output (probabilities or decision scores) of the test rows
    (None without test rows). A fold fit
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
        result = (getattr(estimator, "classes_", None),
                  getattr(estimator, method)(_safe_indexing(X, test)))
    if verbose:
        print(_message_with_time("skcfe", message, time.perf_counter() - start), flush=True)
    return result


def _fold_tasks(named_estimators, X, y, splits, fit_params, verbose, methods=None):
    fit_params = fit_params or {}
    methods = methods or [stack_method(name, est) for name, est in named_estimators]
    return [
        delayed(_fit_predict)(
            est, X, y, train, test, fit_params.get(name, {}),
            f"{name}: fold {k} of {len(splits)}", verbose, method,
        )
        for (name, est), method in zip(named_estimators, methods)
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


def _assemble(named_estimators, results, y, splits, n_classes, classes, methods=None,
              fit_params=None):
    """R from the fold predictions, estimator by estimator (results in _fold_tasks' order).

    Returns ``(R, calibrators)``: the decision scores of an estimator without
    predict_proba are calibrated out of fold (:func:`cross_calibrate`, with
    the sample weights routed to its fit) and its calibrator of new rows is
    returned; None for the others.
    """
    n_rows = len(y)
    blocks, calibrators = [], []
    fit_params = fit_params or {}
    methods = methods or [stack_method(name, est) for name, est in named_estimators]
    results = iter(results)
    for (name, est), method in zip(named_estimators, methods):
        labels = _labels(est, n_classes, classes, as_given=False)
        if method == "decision_function":
            block = np.zeros((n_rows, 1 if n_classes == 2 else n_classes))
            for _, test in splits:
                fold_classes, scores = next(results)
                block[test] = score_columns(scores, fold_classes, labels, name,
                                            _num_samples(block[test]))
            weight = _routed_weight(fit_params.get(name, {}))
            block, calibrator = cross_calibrate(
                block, np.asarray(y), splits, n_classes,
                None if weight is None else np.asarray(weight, dtype=float))
            blocks.append(proba_columns(block, n_classes, name))
            calibrators.append(calibrator)
            continue
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
            n_test = _num_samples(block[test])
            if proba.ndim != 2 or proba.shape != (n_test, n_classes):
                proba_columns(proba, n_classes, name, n_test)  # raises with the shape
            block[test] = proba
        blocks.append(proba_columns(block, n_classes, name))
        calibrators.append(None)
    return np.hstack(blocks), calibrators


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
    methods = [stack_method(name, est) for name, est in named_estimators]
    results = Parallel(n_jobs=n_jobs)(_fold_tasks(named_estimators, X, y, splits, fit_params,
                                                  verbose, methods))
    return _assemble(named_estimators, results, y, splits, n_classes, classes, methods,
                     fit_params)[0]


def fit_estimators(named_estimators, X, y, fit_params=None, *, n_jobs, verbose=0):
    """Clone and fit every base estimator on all rows given (the fitted objects, in order)."""
    results = Parallel(n_jobs=n_jobs)(_refit_tasks(named_estimators, X, y, fit_params, verbose))
    return [est for est, _ in results]


def fit_base_layer(named_estimators, X, y, splits, fit_params=None, *, n_classes, n_jobs,
                   verbose, classes=None):
    """:func:`oof_matrix` and :func:`fit_estimators` as one batch of joblib tasks.

    Returns ``(R, estimators, calibrators)``: ``calibrators`` holds, for each
    estimator without predict_proba, the calibrator that maps its refit
    decision scores of new rows to probabilities (None for the others). One
    batch keeps every worker busy: the k fold fits and the refit of each
    estimator run side by side.
    """
    methods = [stack_method(name, est) for name, est in named_estimators]
    folds = _fold_tasks(named_estimators, X, y, splits, fit_params, verbose, methods)
    results = Parallel(n_jobs=n_jobs)(
        folds + _refit_tasks(named_estimators, X, y, fit_params, verbose)
    )
    R, calibrators = _assemble(named_estimators, results[:len(folds)], y, splits, n_classes,
                               classes, methods, fit_params)
    return R, [est for est, _ in results[len(folds):]], calibrators


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
        if stack_method(name, est) != "predict_proba":
            raise ValueError(
                f"cv='prefit' uses the base estimators as they are, but {name!r} "
                f"({type(est).__name__}) has no predict_proba, and its decision_function "
                "needs a calibrator fitted on out-of-fold scores, which cv='prefit' does "
                "not make. Wrap it in FrozenEstimator and give an int cv (its scores are "
                "then calibrated out of fold), or calibrate it yourself on held-out rows: "
                "CalibratedClassifierCV(FrozenEstimator(est)).fit(X_holdout, y_holdout)."
            )
    return [est for _, est in named_estimators]


def refit_matrix(estimators, X, n_classes, names=None, *, classes=None, as_given=False,
                 calibrators=None):
    """Probability matrix of any rows from the fitted base estimators.

    ``classes`` (the user's labels) maps the columns of estimators used as
    given (``as_given``: ``cv='prefit'``; or frozen ones), which were fitted
    on those labels rather than on the encoded ones. ``calibrators`` (from
    :func:`fit_base_layer`) map the decision scores of the estimators
    without predict_proba; None entries use predict_proba.
    """
    names = names or [type(est).__name__ for est in estimators]
    calibrators = calibrators or [None] * len(estimators)
    n_rows = _num_samples(X)
    columns = []
    for est, name, calibrator in zip(estimators, names, calibrators):
        labels = _labels(est, n_classes, classes, as_given)
        if calibrator is None:
            proba = _global_columns(est.predict_proba(X), getattr(est, "classes_", None),
                                    labels, name)
        else:
            scores = score_columns(est.decision_function(X), getattr(est, "classes_", None),
                                   labels, name, n_rows)
            proba = calibrated_proba(calibrator, scores, n_classes)
        columns.append(proba_columns(proba, n_classes, name, n_rows))
    return np.hstack(columns)
