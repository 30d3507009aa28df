"""The Super Learner's cross-validated selection on the out-of-fold matrix.

The base layer's out-of-fold matrix ``R`` is fixed, so scoring a candidate
costs level-1 fits only. :func:`select` fits every candidate on the
training rows of each inner fold (stratified, over the labeled rows) and
scores it on the rest: every candidate is scored only on rows it was not
fitted on. Beyond :data:`SELECTION_MAX_ROWS` labeled rows the folds give
way to one holdout split (:func:`holdout_rows`), so that the selection
costs the same at any size.
"""

import time

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold
from sklearn.utils._user_interface import _message_with_time

from .._threads import blas_threads, one_blas_thread


def default_scoring(n_classes):
    """The selection criterion when ``scoring=None``.

    PR-AUC (average precision) for binary problems, the goal on imbalanced
    data; log loss for K classes, which also rewards calibration.
    """
    return "average_precision" if n_classes == 2 else "neg_log_loss"


class _ProbaInput(ClassifierMixin, BaseEstimator):
    """A classifier whose input is its own ``predict_proba`` output.

    Lets any scikit-learn scorer score a matrix of predicted probabilities:
    ``scorer(_ProbaInput(classes), P, y)``.
    """

    def __init__(self, classes):
        self.classes = classes

    def fit(self, X, y=None):  # pragma: no cover - never fitted, classes_ is set
        return self

    @property
    def classes_(self):
        return self.classes

    def predict_proba(self, X):
        return X

    def predict(self, X):
        return self.classes[np.argmax(X, axis=1)]


def average_precision(y, proba, sample_weight):
    """Weighted average precision of ``proba[:, 1]``, as scikit-learn computes it.

    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds; the same value
    as :func:`sklearn.metrics.average_precision_score`, without its input
    validation, which dominates the cost of greedy ensemble selection.
    """
    score = proba[:, 1]
    # The unstable (vectorized) sort is about twice as fast; with distinct
    # scores its order is the stable one, so the value is the same to the bit.
    # With ties (or NaN) the stable sort is redone, as tied rows' order sets
    # the summation order of their weights.
    order = np.argsort(-score)
    step = np.diff(score[order])
    if len(score) and (not step.all() or np.isnan(score[order[-1]])):
        order = np.argsort(-score, kind="mergesort")
        step = np.diff(score[order])
    positive = (y[order] == 1) * sample_weight[order]
    tps = np.cumsum(positive)
    total = np.cumsum(sample_weight[order])
    last = np.r_[np.flatnonzero(step), len(score) - 1]
    tps, total = tps[last], total[last]
    if tps[-1] <= 0:
        return 0.0
    precision = np.divide(tps, total, out=np.zeros_like(tps), where=total > 0)
    return float(np.dot(np.diff(tps, prepend=0.0) / tps[-1], precision))


# Bins of binned_average_precision's scores: a resolution of 1.5e-5 in probability.
_AP_BINS = 2**16


def binned_average_precision(y, proba, sample_weight):
    """:func:`average_precision` of ``proba[:, 1]`` rounded down to a grid of ``_AP_BINS`` bins.

    Linear in the rows (two weighted counts, no sort): greedy ensemble
    selection scores ten trials a step with it when the selection runs on a
    subsample of many rows (:data:`SELECTION_MAX_ROWS`); below that the exact
    criterion is used. Rows within one bin count as tied, as equal scores do.
    """
    index = (_AP_BINS - 1) - np.clip((proba[:, 1] * _AP_BINS).astype(np.intp), 0, _AP_BINS - 1)
    total = np.bincount(index, weights=sample_weight, minlength=_AP_BINS)
    seen = np.flatnonzero(total)  # the bins from the top score down
    positive = np.bincount(index, weights=(y == 1) * sample_weight, minlength=_AP_BINS)[seen]
    tps, total = np.cumsum(positive), np.cumsum(total[seen])
    if len(tps) == 0 or tps[-1] <= 0:
        return 0.0
    return float(np.dot(np.diff(tps, prepend=0.0) / tps[-1], tps / total))


def neg_log_loss(y, proba, sample_weight):
    """Weighted mean log loss of ``proba``, negated (as scikit-learn's scorer)."""
    p = np.clip(proba[np.arange(len(y)), y], np.finfo(float).eps, None)
    return float(np.dot(sample_weight, np.log(p)) / sample_weight.sum())


_FAST_METRICS = {"average_precision": average_precision, "neg_log_loss": neg_log_loss}


def get_scorer(scoring, n_classes):
    """``score(y, proba, sample_weight)`` for ``scoring`` (None: :func:`default_scoring`).

    Any scikit-learn scorer name or callable ``scorer(estimator, X, y)``
    works; it scores a matrix of predicted probabilities through a classifier
    whose input is its own output. The default criteria have exact fast
    versions. A scorer that fails on these probabilities, or returns NaN,
    raises a ValueError that names ``scoring``.
    """
    scoring = default_scoring(n_classes) if scoring is None else scoring
    if isinstance(scoring, str) and scoring in _FAST_METRICS:
        return _FAST_METRICS[scoring]
    identity = _ProbaInput(np.arange(n_classes))
    scorer = check_scoring(identity, scoring=scoring)

    def score(y, proba, sample_weight):
        try:
            value = float(scorer(identity, proba, y, sample_weight=sample_weight))
        except ValueError as exc:
            raise ValueError(
                f"scoring={scoring!r} failed on the combiner selection's {n_classes}-class "
                f"probabilities: {exc} Use a scorer for {n_classes} classes (e.g. "
                f"{'roc_auc_ovr' if n_classes > 2 else 'average_precision'}), or "
                "scoring=None for the default."
            ) from exc
        if not np.isfinite(value):
            raise ValueError(
                f"scoring={scoring!r} returned {value} on the combiner selection's inner "
                "folds; the selection needs a finite score for every candidate."
            )
        return value

    return score


# Up to this many labeled rows the selection cross-validates on every row
# (``selection_cv`` folds). Beyond it, it is a holdout (:func:`holdout_rows`):
# the candidates are fitted once on HOLDOUT_FIT_ROWS labeled rows and scored,
# and the pool weighted, on up to HOLDOUT_SCORE_ROWS others, so that it costs
# a constant at any size; the fitted candidates are used as they are (the
# configured CF aggregator excepted, which is fitted on every row anyway).
# The benchmark suite's largest training split has about 14,000 rows, so
# nothing it measures changes. benchmarks/results/scale.md compares the
# holdout with the 5-fold selection on every row.
SELECTION_MAX_ROWS = 50_000
HOLDOUT_FIT_ROWS = 20_000
HOLDOUT_SCORE_ROWS = 50_000


def _stratified_take(rows, y, n_classes, share, rng, keep=0):
    """Rows of each class of ``rows`` in proportion ``share`` (at least one, leaving at
    least ``keep`` of the class), drawn by ``rng``: (taken, left), both unsorted."""
    taken, left = [], []
    for k in range(n_classes):
        of_k = rng.permutation(rows[y[rows] == k])
        take = min(max(round(share * len(of_k)), 1), len(of_k) - keep)
        taken.append(of_k[:max(take, 0)])
        left.append(of_k[max(take, 0):])
    return np.concatenate(taken), np.concatenate(left)


def _group_take(lab_idx, y, groups, n_classes, n_rows, rng):
    """Labeled rows of whole groups, in a random order of the groups, until ``n_rows``
    rows and every class are in; None when a class has a single group (it cannot be both
    fitted on and scored)."""
    names, inverse = np.unique(groups[lab_idx], return_inverse=True)
    order = rng.permutation(len(names))
    rank = np.empty(len(names), dtype=np.intp)
    rank[order] = np.arange(len(names))
    row_rank = rank[inverse]
    # groups in random order until n_rows labeled rows, then any class still absent
    # gets its first group in that order
    sizes = np.bincount(row_rank, minlength=len(names))
    chosen = np.cumsum(sizes) - sizes < n_rows
    for k in range(n_classes):
        ranks_k = np.unique(row_rank[y[lab_idx] == k])
        if len(ranks_k) < 2:
            return None
        if not chosen[ranks_k].any():
            chosen[ranks_k[0]] = True
        if chosen[ranks_k].all():
            chosen[ranks_k[-1]] = False
    fit = chosen[row_rank]
    for k in range(n_classes):
        in_fit = fit[y[lab_idx] == k]
        if in_fit.all() or not in_fit.any():  # the repairs above undid each other
            return None
    return lab_idx[fit]


def holdout_rows(y, labeled, n_classes, seed, groups=None, *, max_rows=None, fit_rows=None,
                 score_rows=None):
    """The selection's holdout beyond ``max_rows`` labeled rows: ``(fit, score)`` or None.

    None while the labeled rows number at most ``max_rows``
    (:data:`SELECTION_MAX_ROWS` when None): the selection then
    cross-validates on every row. Beyond it, ``fit`` holds a stratified
    random sample of ``fit_rows`` labeled rows (:data:`HOLDOUT_FIT_ROWS`;
    each class in proportion, at least one row of it) and the same fraction
    of the unlabeled rows; ``score`` a stratified sample of up to
    ``score_rows`` (:data:`HOLDOUT_SCORE_ROWS`) of the other labeled rows.
    With ``groups``, ``fit`` takes whole groups (in a random order, until
    ``fit_rows`` labeled rows and every class), so that no group is both
    fitted on and scored; None if a class lies in a single group. Drawn
    with ``RandomState(seed)``; both sorted.
    """
    max_rows = SELECTION_MAX_ROWS if max_rows is None else max_rows
    fit_rows = HOLDOUT_FIT_ROWS if fit_rows is None else fit_rows
    score_rows = HOLDOUT_SCORE_ROWS if score_rows is None else score_rows
    lab_idx = np.flatnonzero(labeled)
    if len(lab_idx) <= max_rows:
        return None
    rng = np.random.RandomState(seed)
    if groups is None:
        fit, rest = _stratified_take(lab_idx, y, n_classes, fit_rows / len(lab_idx), rng,
                                     keep=1)
    else:
        groups = np.asarray(groups)
        fit = _group_take(lab_idx, y, groups, n_classes, fit_rows, rng)
        if fit is None:
            return None
        rest = np.setdiff1d(lab_idx, fit, assume_unique=True)  # the other groups
    score, _ = _stratified_take(rest, y, n_classes, min(1.0, score_rows / len(rest)), rng)
    unl_idx = np.flatnonzero(~labeled)
    unlabeled = rng.choice(unl_idx, round(len(fit) / len(lab_idx) * len(unl_idx)),
                           replace=False)
    return np.sort(np.concatenate([fit, unlabeled])), np.sort(score)


def n_inner_splits(y, labeled, n_classes, selection_cv, groups=None):
    """Folds of the selection: ``selection_cv``, at most the labeled rows of the smallest
    class and the number of groups among the labeled rows (fewer than 2: no selection)."""
    smallest = np.bincount(y[labeled], minlength=n_classes).min()
    n_splits = min(int(selection_cv), int(smallest))
    if groups is not None:
        n_splits = min(n_splits, len(np.unique(np.asarray(groups)[labeled])))
    return n_splits


def inner_folds(y, groups, *, n_splits, n_repeats, random_state):
    """The selection's (train, test) index pairs over rows with labels ``y``, repeat by repeat."""
    if groups is None:
        splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats,
                                           random_state=random_state)
        return list(splitter.split(y, y))
    rng = np.random.RandomState(random_state)
    folds = []
    for _ in range(n_repeats):
        splitter = StratifiedGroupKFold(n_splits, shuffle=True,
                                        random_state=rng.randint(np.iinfo(np.int32).max))
        folds += list(splitter.split(y, y, groups))
    return folds


def _fit_on_fold(candidate, R, train, test, y, labeled, weights, context, message):
    """A clone of ``candidate`` fitted on rows ``train``: its probabilities of rows ``test``,
    its fit seconds and the fitted clone; with a ``message``, one line of progress."""
    candidate = clone(candidate)
    start = time.perf_counter()
    candidate.fit(R[train], y[train], labeled[train], weights[train], context)
    elapsed = time.perf_counter() - start
    proba = candidate.predict_proba(R[test])
    if message:
        # one write per line: the fits run in threads
        print(_message_with_time("skcfe", message, time.perf_counter() - start) + "\n", end="",
              flush=True)
    return proba, elapsed, candidate


def _run(tasks, n_jobs):
    """``[_fit_on_fold(*task) for task in tasks]`` in order, in ``n_jobs`` joblib jobs.

    ``n_jobs=None`` (and no joblib context that sets more): in as many threads
    as BLAS may use, each with one BLAS thread (set once, before the threads
    start: see ``_threads.py``), so the results do not depend on the threads.
    """
    if n_jobs is None and effective_n_jobs(None) == 1:
        n_threads = min(blas_threads(), len(tasks))
        with one_blas_thread():
            return Parallel(n_jobs=n_threads, backend="threading")(
                delayed(_fit_on_fold)(*task) for task in tasks)
    return Parallel(n_jobs=n_jobs)(delayed(_fit_on_fold)(*task) for task in tasks)


def select(R, y, labeled, weights, *, candidates, context, n_splits=5, n_repeats=1,
           random_state=None, verbose=0, R_complete=None, groups=None, n_jobs=None,
           holdout=None, return_estimators=False):
    """Score every candidate by (repeated) stratified K-fold on the labeled rows of ``R``.

    With ``groups`` (one label per row of ``R``) the folds are
    :class:`~sklearn.model_selection.StratifiedGroupKFold`'s, shuffled anew
    for each repeat: no group is split between a candidate's fit and the
    rows it is scored on.

    Unlabeled rows are training rows of every fold (the CF candidates'
    factorization uses them; the others ignore them). The out-of-fold
    probabilities of each repeat are pooled and scored once: with few
    labeled rows of a class that is far less noisy than a mean of fold
    scores, which are reported too. Candidates that need every prediction
    are fitted on ``R_complete`` when it is given.

    ``holdout=(fit, score)`` (indices of labeled rows of ``R``, as
    :func:`holdout_rows` draws them) replaces the folds by one split: the
    candidates are fitted once on ``fit`` and the unlabeled rows, and scored
    on ``score`` alone.

    Every (candidate, fold) fit is one task on a clone of the candidate, run
    in ``n_jobs`` joblib jobs (:func:`_run`); the results do not depend on
    ``n_jobs`` or on the threads.

    Parameters
    ----------
    candidates : list of (str, candidate)
    context : Level1Context
        Its ``scorer`` scores the candidates.
    verbose : int
        > 0: one line per candidate and fold with its time, and one per
        candidate with its pooled score.
    return_estimators : bool
        Add ``estimators``, every candidate's fitted clones (one per fold), to
        the results, as :func:`~sklearn.model_selection.cross_validate` does.

    Returns
    -------
    results : dict
        ``cv_results_``-like: ``candidate``, ``pooled_test_score`` (what the
        choice uses, averaged over repeats), ``mean_test_score``,
        ``std_test_score`` and ``split{k}_test_score`` over the folds,
        ``rank_test_score`` (by the pooled score) and ``mean_fit_time``
        (seconds per fold).
    oof : ndarray of shape (n_candidates, n_repeats, n_scored, n_classes)
        Every candidate's out-of-fold probabilities of the labeled rows it
        was scored on, in row order: every labeled row, or ``score``.
    """
    scorer, n_classes = context.scorer, context.n_classes
    if holdout is None:
        lab_idx = np.flatnonzero(labeled)
        folds = inner_folds(y[lab_idx], None if groups is None else np.asarray(groups)[lab_idx],
                            n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
        n_scored = len(lab_idx)
    else:
        fit, score = holdout
        lab_idx = np.concatenate([score, fit])  # the scored rows first
        folds = [(np.arange(len(score), len(lab_idx)), np.arange(len(score)))]
        n_splits, n_repeats, n_scored = 1, 1, len(score)
    unl_idx = np.flatnonzero(~labeled)
    y_lab, w_lab = y[lab_idx[:n_scored]], weights[lab_idx[:n_scored]]

    def matrix(candidate):
        complete = R_complete is None or candidate.handles_missing
        return R if complete else R_complete

    tasks = [(candidate, matrix(candidate), np.concatenate([lab_idx[train], unl_idx]),
              lab_idx[test], y, labeled, weights, context,
              verbose and f"level-1 {name}: fold {k} of {len(folds)}")
             for name, candidate in candidates for k, (train, test) in enumerate(folds, 1)]
    fitted = _run(tasks, n_jobs)
    oof = np.empty((len(candidates), n_repeats, n_scored, n_classes))
    fold_scores = np.empty((len(candidates), len(folds)))
    fit_time = np.zeros(len(candidates))
    pooled = np.empty(len(candidates))
    for c, (name, _) in enumerate(candidates):
        for k, (_, test) in enumerate(folds):
            proba, elapsed, _ = fitted[c * len(folds) + k]
            fit_time[c] += elapsed
            oof[c, k // n_splits, test] = proba
            fold_scores[c, k] = scorer(y_lab[test], proba, w_lab[test])
        pooled[c] = (fold_scores[c, 0] if len(folds) == 1 else  # a holdout: the same rows
                     np.mean([scorer(y_lab, oof[c, r], w_lab) for r in range(n_repeats)]))
        if verbose:
            print(f"[skcfe] level-1 {name}: pooled out-of-fold score {pooled[c]:.4f}, "
                  f"{len(folds)} fits in {fit_time[c]:.2f} s", flush=True)
    results = {
        "candidate": [name for name, _ in candidates],
        "pooled_test_score": pooled,
        "mean_test_score": fold_scores.mean(axis=1),
        "std_test_score": fold_scores.std(axis=1),
        **{f"split{k}_test_score": fold_scores[:, k] for k in range(len(folds))},
        "rank_test_score": (np.argsort(np.argsort(-pooled, kind="stable")) + 1).astype(np.int32),
        "mean_fit_time": fit_time / len(folds),
    }
    if return_estimators:
        results["estimators"] = [[fitted[c * len(folds) + k][2] for k in range(len(folds))]
                                 for c in range(len(candidates))]
    return results, oof
