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

from dataclasses import dataclass, replace

import numpy as np
from sklearn.base import clone

from .._cf import cf_complete
from .._validation import is_named_list
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
    n_inner_splits,
    select,
    selection_rows,
)

COMBINER_STRINGS = ("auto", "select", "cf")

# After a selection on a subsample (more labeled rows than
# selection.SELECTION_MAX_ROWS), the chosen candidates other than the
# configured CF aggregator are refitted on the subsample (False) or on every
# row (True). They have at most a few dozen parameters; see
# benchmarks/results/scale.md for the held-out comparison that chose False.
REFIT_EVERY_ROW = False


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
    labeled rows, the selection (inner folds, scores, greedy ensemble
    selection's counts, the pool's weights) runs on a stratified subsample
    of that many labeled rows (:func:`~skcfe.level1.selection.selection_rows`,
    seeded by ``context.seed``), and the chosen candidates are refitted on
    that subsample (on every row with ``REFIT_EVERY_ROW``; ``CFCandidate()``,
    the configured CF aggregator, is ``cf_model``, fitted on every row), so
    that the level-1 step costs the same at any size. Greedy ensemble
    selection then scores its steps by the binned average precision.

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

    def refit(candidate, on=None, context=context):
        """``candidate`` fitted on every row, or on rows ``on``."""
        nonlocal completion, R_complete
        if isinstance(candidate, CFCandidate) and not candidate.overrides:
            return CFCandidate.from_model(cf_model)
        candidate = clone(candidate)
        part = slice(None) if on is None else on
        data = (y[part], labeled[part], sample_weight[part], context)
        if candidate.handles_missing or not missing:
            return candidate.fit(R[part], *data)
        if completion is None:
            completion = fit_completion(R, y, labeled, sample_weight, context)
            R_complete = cf_complete(completion, R)
        return Completed(candidate.fit(R_complete[part], *data), completion)

    if not isinstance(combiner, (str, list, tuple)):
        return Level1Fit(type(combiner).__name__, refit(as_candidate("combiner", combiner)))
    rows = selection_rows(y, labeled, context.n_classes, context.seed,
                                     min_per_class=int(selection_cv))
    sub = slice(None) if rows is None else rows
    y_sel, labeled_sel, weight_sel = y[sub], labeled[sub], sample_weight[sub]
    groups_sel = None if groups is None else np.asarray(groups)[sub]
    n_splits = n_inner_splits(y_sel, labeled_sel, context.n_classes, selection_cv, groups_sel)
    if n_splits < 2:
        return Level1Fit("cf", CFCandidate.from_model(cf_model))
    if rows is not None and verbose:
        print(f"[skcfe] level-1 selection on a stratified subsample of {labeled_sel.sum()} "
              f"of {labeled.sum()} labeled rows", flush=True)
    if isinstance(combiner, str):
        candidates = default_candidates(
            context.names, context.n_classes, latent_dim=context.cf_params["latent_dim"],
            semi_supervised=not labeled.all(), missing=missing,
        )
    else:
        candidates = check_candidates(combiner)
    if missing and not all(c.handles_missing for _, c in candidates):
        completion = fit_completion(R, y, labeled, sample_weight, context)
        R_complete = cf_complete(completion, R)
    R_sel = R[sub]
    R_complete_sel = None if R_complete is None else R_complete[sub]
    context_sel = context
    if rows is not None and context.scorer is average_precision:
        context_sel = replace(context, greedy_scorer=binned_average_precision)
    results, oof = select(
        R_sel, y_sel, labeled_sel, weight_sel, candidates=candidates, context=context_sel,
        n_splits=n_splits, random_state=context.seed, verbose=verbose,
        R_complete=R_complete_sel, groups=groups_sel, n_jobs=n_jobs,
    )

    def refit_chosen(candidate):
        """``refit``; after a subsample's selection, on the subsample (the configured CF
        aggregator excepted, fitted on every row) unless ``REFIT_EVERY_ROW``, and then
        greedy selection's counts come from the subsample."""
        if rows is None:
            return refit(candidate)
        if not REFIT_EVERY_ROW:
            return refit(candidate, on=rows, context=context_sel)
        if isinstance(candidate, AverageCandidate) and candidate.counts is None:
            counts = refit(candidate, on=rows, context=context_sel).counts_
            candidate = clone(candidate).set_params(counts=counts)
        return refit(candidate)

    if isinstance(combiner, str) and combiner == "select":
        best = int(np.argmax(results["pooled_test_score"]))
        return Level1Fit(candidates[best][0], refit_chosen(candidates[best][1]), results)
    lab = np.flatnonzero(labeled_sel)
    pool = np.zeros(len(candidates))
    entered = pool_members(results["candidate"], results["pooled_test_score"])
    pool[entered], intercept = super_learner_weights(oof[entered], y_sel[lab], weight_sel[lab],
                                                     context.n_classes)
    results["weight"] = pool
    members = np.flatnonzero(pool > 0)
    if len(members) == 0:  # every weight at its bound: the best candidate alone
        best = int(np.argmax(results["pooled_test_score"]))
        return Level1Fit(candidates[best][0], refit_chosen(candidates[best][1]), results)
    pooled = SuperLearner([refit_chosen(candidates[c][1]) for c in members], pool[members],
                          intercept, context.n_classes)
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
