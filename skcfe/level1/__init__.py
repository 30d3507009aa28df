"""The level-1 step: what combines the base models' out-of-fold matrix ``R``.

- :mod:`~skcfe.level1.candidates`: every level-1 model, the CF aggregator
  included, behind one interface (fit on ``R``, ``predict_proba``), and
  the documented default library;
- :mod:`~skcfe.level1.selection`: the cross-validated scores of the candidates;
- :mod:`~skcfe.level1.pool`: the Super Learner's non-negative log-linear pool;
- :mod:`~skcfe.level1.display`: :class:`SelectionDisplay`.

:func:`fit_level1` is what :class:`~skcfe.CFEnsembleClassifier` calls: it
turns ``combiner`` and ``R`` into one fitted level-1 model with
``predict_proba``.
"""

import warnings
from dataclasses import dataclass, replace

import numpy as np
from sklearn.base import clone

from .._cf import cf_complete
from .._validation import is_named_list
from . import selection
from .candidates import (
    AverageCandidate,
    CFCandidate,
    Completed,
    EstimatorCandidate,
    FactorCandidate,
    IndicatorCandidate,
    Level1Candidate,
    Level1Context,
    NonNegLogitCandidate,
    StackingCandidate,
    as_candidate,
    default_candidates,
    fit_completion,
)
from .display import SelectionDisplay
from .pool import SuperLearner, pool_members, super_learner_weights
from .selection import (
    average_precision,
    binned_average_precision,
    holdout_rows,
    n_inner_splits,
    select,
)

COMBINER_STRINGS = ("auto", "select", "cf")


@dataclass
class Level1Fit:
    """The fitted level-1 step.

    Attributes
    ----------
    name : str
        'cf', 'super_learner', the chosen candidate's name ('select') or the
        class name of a ``combiner`` estimator.
    model : object
        The fitted model: ``predict_proba(R)`` and ``handles_missing``.
    results : dict or None
        :func:`~skcfe.level1.selection.select`'s results, with the pool's
        ``weight`` when the candidates were pooled; None without a selection.
    """

    name: str
    model: object
    results: dict | None = None


def check_candidates(combiner):
    """``combiner`` given as a list: ``[(name, candidate), ...]``, validated."""
    if not is_named_list(combiner):
        raise ValueError(
            "A combiner list must be a non-empty list of (name, estimator) tuples, each a "
            f"scikit-learn classifier or a skcfe.level1 candidate; got {combiner!r}."
        )
    names = [name for name, _ in combiner]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Names of the combiner's candidates must be unique; {duplicates} "
                         "appear more than once.")
    bad = [name for name in names if "__" in name]
    if bad:
        raise ValueError(f"Names of the combiner's candidates cannot contain '__': {bad}.")
    return [(name, as_candidate(name, obj)) for name, obj in combiner]


def fit_level1(combiner, R, y, labeled, sample_weight, context, *, cf_model, selection_cv=5,
               groups=None, n_jobs=None, verbose=0):
    """Fit the level-1 step that ``combiner`` names on the out-of-fold matrix ``R``.

    ``R`` may have missing entries (NaN, ``estimators='precomputed'``): the
    candidates that read them (``handles_missing``) see them as they are;
    the others see them completed by :func:`~skcfe.level1.candidates.fit_completion`.

    With more than :data:`~skcfe.level1.selection.SELECTION_MAX_ROWS`
    labeled rows the selection is a holdout
    (:func:`~skcfe.level1.selection.holdout_rows`, seeded by
    ``context.seed``): the candidates are fitted once on a stratified sample
    of :data:`~skcfe.level1.selection.HOLDOUT_FIT_ROWS` labeled rows and
    scored, and the pool weighted, on up to
    :data:`~skcfe.level1.selection.HOLDOUT_SCORE_ROWS` others; the chosen
    candidates are those fits (``CFCandidate()``, the configured CF
    aggregator, is ``cf_model``, fitted on every row), so that the level-1
    step costs the same at any size. Greedy ensemble selection then scores
    its steps by the binned average precision.

    Parameters
    ----------
    combiner : {'auto', 'select', 'cf'}, classifier or list of (str, candidate)
        As :class:`~skcfe.CFEnsembleClassifier`'s.
    R : ndarray of shape (n_samples, n_columns)
    y, labeled, sample_weight : ndarray of shape (n_samples,)
        Encoded labels, which rows are labeled, row weights.
    context : Level1Context
    cf_model : CFModel
        The CF aggregator as configured, fitted on every row: ``combiner='cf'``
        and the candidate ``CFCandidate()`` use it without a refit.
    selection_cv, groups, n_jobs, verbose
        As the estimator's (see :func:`~skcfe.level1.selection.select`).

    Returns
    -------
    Level1Fit
    """
    if isinstance(combiner, str) and combiner == "cf":
        return Level1Fit("cf", CFCandidate.from_model(cf_model))
    completion = R_complete = None
    missing = bool(np.isnan(R).any())

    def refit(candidate):
        """``candidate`` fitted on every row."""
        nonlocal completion, R_complete
        if isinstance(candidate, CFCandidate) and not candidate.overrides:
            return CFCandidate.from_model(cf_model)
        candidate = clone(candidate)
        data = (y, labeled, sample_weight, context)
        if candidate.handles_missing or not missing:
            return candidate.fit(R, *data)
        if completion is None:
            completion = fit_completion(R, y, labeled, sample_weight, context)
            R_complete = cf_complete(completion, R)
        return Completed(candidate.fit(R_complete, *data), completion)

    if not isinstance(combiner, (str, list, tuple)):
        return Level1Fit(type(combiner).__name__, refit(as_candidate("combiner", combiner)))
    n_splits = n_inner_splits(y, labeled, context.n_classes, selection_cv, groups)
    split = None if n_splits < 2 else holdout_rows(y, labeled, context.n_classes, context.seed,
                                                    groups)
    if split is None and n_splits >= 2 and labeled.sum() > selection.SELECTION_MAX_ROWS:
        warnings.warn(
            f"The level-1 selection was skipped and combiner='cf' used: beyond "
            f"{selection.SELECTION_MAX_ROWS} labeled rows it is a holdout by groups, and a "
            "class has labeled rows in a single group, so it cannot be both fitted on and "
            "scored. Pass groups that split every class, or combiner='cf' to silence this.",
            UserWarning,
        )
    if n_splits < 2 or (split is None and labeled.sum() > selection.SELECTION_MAX_ROWS):
        return Level1Fit("cf", CFCandidate.from_model(cf_model))
    if isinstance(combiner, str):
        candidates = default_candidates(
            context.names, context.n_classes, latent_dim=context.cf_params["latent_dim"],
            semi_supervised=not labeled.all(), missing=missing,
        )
    else:
        candidates = check_candidates(combiner)
    completes = missing and not all(c.handles_missing for _, c in candidates)
    if split is None:
        if completes:
            completion = fit_completion(R, y, labeled, sample_weight, context)
            R_complete = cf_complete(completion, R)
        results, oof = select(
            R, y, labeled, sample_weight, candidates=candidates, context=context,
            n_splits=n_splits, random_state=context.seed, verbose=verbose,
            R_complete=R_complete, groups=groups, n_jobs=n_jobs,
        )
        scored = np.flatnonzero(labeled)
    else:
        fit_rows, scored = split
        rows = np.union1d(fit_rows, scored)  # positions in R[rows] by searchsorted
        fit_lab = fit_rows[labeled[fit_rows]]
        # the completion reads no label: fitted on the holdout's rows, it costs a constant
        holdout_completion = R_complete_rows = None
        if completes:
            holdout_completion = fit_completion(R[rows], y[rows], labeled[rows],
                                                sample_weight[rows], context)
            R_complete_rows = cf_complete(holdout_completion, R[rows])
        if verbose:
            print(f"[skcfe] level-1 selection on a holdout: candidates fitted on {len(fit_lab)} "
                  f"labeled rows, scored on {len(scored)} of {labeled.sum()}", flush=True)
        context_sel = context
        if context.scorer is average_precision:
            context_sel = replace(context, greedy_scorer=binned_average_precision)
        results, oof = select(
            R[rows], y[rows], labeled[rows], sample_weight[rows], candidates=candidates,
            context=context_sel, verbose=verbose,
            R_complete=R_complete_rows, n_jobs=n_jobs,
            holdout=(np.searchsorted(rows, fit_lab), np.searchsorted(rows, scored)),
            return_estimators=True,
        )
        fitted = results.pop("estimators")

    def chosen(c):
        """Candidate ``c`` fitted for prediction: on every row, or its holdout fit."""
        candidate = candidates[c][1]
        if split is None or (isinstance(candidate, CFCandidate) and not candidate.overrides):
            return refit(candidate)
        if candidate.handles_missing or not missing:
            return fitted[c][0]
        return Completed(fitted[c][0], holdout_completion)  # fitted on the completed matrix

    if isinstance(combiner, str) and combiner == "select":
        best = int(np.argmax(results["pooled_test_score"]))
        return Level1Fit(candidates[best][0], chosen(best), results)
    pool = np.zeros(len(candidates))
    entered = pool_members(results["candidate"], results["pooled_test_score"])
    pool[entered], intercept = super_learner_weights(oof[entered], y[scored],
                                                     sample_weight[scored], context.n_classes)
    results["weight"] = pool
    members = np.flatnonzero(pool > 0)
    if len(members) == 0:  # every weight at its bound: the best candidate alone
        best = int(np.argmax(results["pooled_test_score"]))
        return Level1Fit(candidates[best][0], chosen(best), results)
    pooled = SuperLearner([chosen(c) for c in members], pool[members], intercept,
                          context.n_classes)
    return Level1Fit("super_learner", pooled, results)


__all__ = [
    "AverageCandidate",
    "CFCandidate",
    "EstimatorCandidate",
    "FactorCandidate",
    "IndicatorCandidate",
    "Level1Candidate",
    "Level1Context",
    "Level1Fit",
    "NonNegLogitCandidate",
    "SelectionDisplay",
    "StackingCandidate",
    "default_candidates",
    "fit_level1",
]
