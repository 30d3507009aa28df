"""The level-1 step of CFEnsembleClassifier as pure functions of the out-of-fold matrix.

:func:`fit_combiner` turns the fitted CF model and the probability matrix
``R`` into the model that predicts: the CF aggregator alone, the best
candidate of :func:`~skcfe._selection.select`, or the Super Learner's pool
of them (``combiner='cf'``, ``'select'``, ``'auto'``). Missing predictions
(NaN) are completed for the candidates that need every prediction by
:func:`fit_completion`, a factorization that reads no label.
"""

import numpy as np

from ._cf import cf_complete, cf_predict_proba, fit_cf
from ._selection import (
    SuperLearner,
    candidate_library,
    get_scorer,
    pool_members,
    select,
    super_learner_weights,
)


class FittedCF:
    """A fitted CF model with the candidates' predict_proba interface."""

    handles_missing = True

    def __init__(self, model):
        self.model = model

    def predict_proba(self, R):
        return cf_predict_proba(self.model, R)


class Completed:
    """A fitted candidate that needs every prediction, fed the completed matrix."""

    handles_missing = True

    def __init__(self, candidate, completion):
        self.candidate = candidate
        self.completion = completion

    def predict_proba(self, R):
        return self.candidate.predict_proba(cf_complete(self.completion, R))


def n_inner_splits(y, labeled, n_classes, selection_cv, groups=None):
    """Folds of the selection: ``selection_cv``, at most the labeled rows of the smallest
    class and the number of groups among the labeled rows (fewer than 2: no selection)."""
    smallest = np.bincount(y[labeled], minlength=n_classes).min()
    n_splits = min(int(selection_cv), int(smallest))
    if groups is not None:
        n_splits = min(n_splits, len(np.unique(np.asarray(groups)[labeled])))
    return n_splits


def fit_completion(R, y, labeled, weights, *, n_classes, cf_params, seed):
    """Label-free factorization of every row (``rho=1``) that completes missing entries.

    A confidence that reads labels is replaced by 'certainty', so that no
    label reaches the completion of a row a candidate is scored on.
    """
    params = dict(cf_params, rho=1.0, verbose=0)
    if params["confidence"] in ("label_aware", "calibration"):
        params["confidence"] = "certainty"
    model, _ = fit_cf(R, y, labeled, weights, n_classes=n_classes, params=params, seed=seed)
    return model


def fit_combiner(R, y, labeled, weights, *, combiner, names, n_classes, cf_model, cf_params, seed,
                 scoring=None, selection_cv=5, groups=None, n_jobs=None, verbose=0):
    """Choose or combine level-1 models by cross-validation on the out-of-fold matrix.

    ``R`` may have missing entries (NaN, ``estimators='precomputed'``): the
    CF candidates give them zero confidence; the others see them completed
    by :func:`fit_completion`.

    Parameters
    ----------
    R : ndarray of shape (n_samples, n_columns)
    y, labeled, weights : ndarray of shape (n_samples,)
        Encoded labels, which rows are labeled, sample weights.
    combiner : {'auto', 'select', 'cf'}
    names : list of str
        Base estimator names, in column order.
    n_classes : int
    cf_model : CFModel
        The CF aggregator as configured, fitted on every row (the first
        candidate, not fitted again).
    cf_params : dict
        Its parameters (:data:`~skcfe._cf.CF_PARAMETERS`).
    seed : int
    scoring, selection_cv, groups, n_jobs, verbose
        As the estimator's (see :func:`~skcfe._selection.select`).

    Returns
    -------
    name : str
        'cf', a candidate's name, or 'super_learner'.
    estimator : object
        What predicts: ``cf_model`` for 'cf', else an object with
        ``predict_proba(R)``.
    results : dict or None
        :func:`~skcfe._selection.select`'s results, with the pool's
        ``weight`` for ``combiner='auto'``; None when no selection ran
        (``combiner='cf'``, or a class with fewer than two labeled rows).
    completion : CFModel or None
        The completion model, when ``R`` has missing entries.
    """
    n_splits = 0 if combiner == "cf" else n_inner_splits(y, labeled, n_classes, selection_cv,
                                                          groups)
    if n_splits < 2:
        return "cf", cf_model, None, None
    scorer = get_scorer(scoring, n_classes)
    missing = bool(np.isnan(R).any())
    library = candidate_library(names, n_classes, cf_params, seed, scorer,
                                semi_supervised=not labeled.all(), missing=missing)
    completion = R_complete = None
    if missing:
        completion = fit_completion(R, y, labeled, weights, n_classes=n_classes,
                                    cf_params=cf_params, seed=seed)
        R_complete = cf_complete(completion, R)
    results, oof = select(
        R, y, labeled, weights, library=library, scorer=scorer, n_classes=n_classes,
        n_splits=n_splits, random_state=seed, verbose=verbose, R_complete=R_complete,
        groups=groups, n_jobs=n_jobs,
    )

    def refit(c):
        if c == 0:  # the CF aggregator as configured is already fitted on every row
            return FittedCF(cf_model)
        candidate = library[c][1]
        if getattr(candidate, "handles_missing", False) or R_complete is None:
            return candidate.fit(R, y, labeled, weights, n_classes)
        return Completed(candidate.fit(R_complete, y, labeled, weights, n_classes), completion)

    pool = np.zeros(len(library))
    if combiner == "auto":
        lab = np.flatnonzero(labeled)
        entered = pool_members(results["candidate"], results["pooled_test_score"])
        pool[entered], intercept = super_learner_weights(oof[entered], y[lab], weights[lab],
                                                         n_classes)
        results["weight"] = pool
    if not np.any(pool > 0):
        best = int(np.argmax(results["pooled_test_score"]))
        return library[best][0], cf_model if best == 0 else refit(best), results, completion
    members = np.flatnonzero(pool > 0)
    pooled = SuperLearner([refit(c) for c in members], pool[members], intercept, n_classes)
    return "super_learner", pooled, results, completion
