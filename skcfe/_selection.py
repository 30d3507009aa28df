"""Level-1 model selection on the out-of-fold matrix (the Super Learner).

The base layer's out-of-fold matrix ``R`` is fixed, so choosing the combiner
costs level-1 fits only. :func:`candidate_library` lists the candidates:

- ``cf``: the CF-Ensemble aggregator as configured (the configured backend),
  and ``cf(latent_dim=K)``, the same with one latent factor per class;
- ``stacking``: StackingClassifier's final estimator, LogisticRegression()
  on the probabilities;
- ``nonneg_logit``: non-negative logit stacking (H2O's default metalearner,
  a GLM with non-negative coefficients), here a log-linear pool
  ``log p_k = sum_j w_j log r_jk + b_k`` with ``w >= 0``;
- ``greedy``: greedy ensemble selection (Caruana et al. 2004), forward
  selection with replacement scored by the selection's own criterion;
- ``single:NAME``: each base estimator alone;
- with unlabeled rows (binary): ``factor``, a one-factor model of the base
  models' logits fitted on every row, labeled or not (a spectral
  meta-learner), and ``voting``, calibrated soft voting;
- with missing predictions: ``missing_indicators``, logistic regression on
  the mean-imputed logits plus one indicator per base model of its
  prediction being missing: where models abstain not at random, that a
  prediction is missing is itself information, which a completion discards.

Every candidate is fitted with a proper loss; ``greedy`` and the single
models map their output through a fitted log-linear pool (Platt scaling for
one binary model, temperature and class biases for K classes), so whichever
is used, ``predict_proba`` estimates ``p(y | x)``. :func:`select` scores
each candidate by stratified K-fold on the labeled rows of ``R``: every
candidate is scored only on rows it was not fitted on.
:func:`super_learner_weights` then pools the candidates with non-negative
weights fitted on those out-of-fold predictions (the continuous Super
Learner of van der Laan, Polley and Hubbard 2007); with many base models,
only the best-scoring single models enter the pool (:func:`pool_members`).
"""

import copy
import time

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import check_scoring
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold

from ._cf import cf_predict_proba, fit_cf
from ._threads import map_in_threads

# Probabilities are clipped to [_CLIP, 1 - _CLIP] before their logarithm:
# trees and forests output exact 0 and 1.
_CLIP = 1e-4

# Forward-selection steps of greedy ensemble selection (auto-sklearn's
# ensemble size is 50; the best prefix is kept, so more steps only cost time).
_GREEDY_STEPS = 25

# L2 penalty of the log-linear pool's weights, on the summed-loss scale (1/C
# of LogisticRegression).
_POOL_ALPHA = 1.0

# Single base models that may enter the Super Learner's pool: the best
# scoring ones, as many as the default library has base models. With 20-60
# base models, screening the rest out gained 0.008 PR-AUC on held-out
# training rows (benchmarks/results/tune_pool_singles.md).
_POOL_MAX_SINGLES = 5


def default_scoring(n_classes):
    """The selection criterion when ``scoring=None``.

    PR-AUC (average precision) for binary problems, the goal on imbalanced
    data; log loss for K classes, which also rewards calibration.
    """
    return "average_precision" if n_classes == 2 else "neg_log_loss"


def _log_proba_blocks(R, n_classes):
    """Per-model log-probability features, shape (n, m) binary (logits) or (n, m, K)."""
    clipped = np.clip(R, _CLIP, 1.0 - _CLIP)
    if n_classes == 2:
        return logit(clipped)
    blocks = clipped.reshape(len(R), -1, n_classes)
    return np.log(blocks / blocks.sum(axis=2, keepdims=True))


def model_proba(R, n_classes, j):
    """(n, K) probabilities of base model ``j`` from its columns of ``R``."""
    if n_classes == 2:
        p = np.clip(R[:, j], 0.0, 1.0)
        return np.column_stack([1.0 - p, p])
    block = np.clip(R[:, j * n_classes:(j + 1) * n_classes], 0.0, None)
    total = block.sum(axis=1, keepdims=True)
    return np.divide(block, total, out=np.full_like(block, 1.0 / n_classes), where=total > 0)


def fit_log_linear_pool(F, y, sample_weight, n_classes, alpha=_POOL_ALPHA):
    """Non-negative weights ``w`` and intercepts ``b`` of a log-linear pool.

    Binary: ``logit p = F @ w + b`` with ``F`` of shape (n, m). K classes:
    ``p_k proportional to exp(sum_j w_j F_jk + b_k)`` with ``F`` of shape
    (n, m, K). Minimizes the weighted mean log loss plus
    ``alpha / (2 sum(sample_weight)) |w|^2`` under ``w >= 0`` (L-BFGS-B).
    """
    m = F.shape[1]
    s = sample_weight / sample_weight.sum()
    ridge = alpha / sample_weight.sum()
    n_b = 1 if n_classes == 2 else n_classes
    Y = None if n_classes == 2 else (y[:, None] == np.arange(n_classes))

    def objective(theta):
        w, b = theta[:m], theta[m:]
        if n_classes == 2:
            z = F @ w + b[0]
            # log loss of a logistic model, written stably
            loss = np.logaddexp(0.0, z) - y * z
            g = (expit(z) - y) * s
            grad_w, grad_b = F.T @ g, np.array([g.sum()])
        else:
            z = np.einsum("imk,m->ik", F, w) + b
            logp = log_softmax(z, axis=1)
            loss = -logp[Y]
            G = (np.exp(logp) - Y) * s[:, None]
            grad_w, grad_b = np.einsum("imk,ik->m", F, G), G.sum(axis=0)
        value = np.dot(s, loss) + 0.5 * ridge * np.dot(w, w)
        return value, np.concatenate([grad_w + ridge * w, grad_b])

    theta0 = np.concatenate([np.full(m, 1.0 / m), np.zeros(n_b)])
    bounds = [(0.0, None)] * m + [(None, None)] * n_b
    solution = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"maxiter": 500, "gtol": 1e-8})
    return solution.x[:m], solution.x[m:]


def pool_proba(F, w, b, n_classes):
    """(n, K) probabilities of a fitted log-linear pool."""
    if n_classes == 2:
        p = expit(F @ w + b[0])
        return np.column_stack([1.0 - p, p])
    return softmax(np.einsum("imk,m->ik", F, w) + b, axis=1)


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
    order = np.argsort(-score, kind="mergesort")
    positive = (y[order] == 1) * sample_weight[order]
    tps = np.cumsum(positive)
    total = np.cumsum(sample_weight[order])
    last = np.r_[np.flatnonzero(np.diff(score[order])), len(score) - 1]
    tps, total = tps[last], total[last]
    if tps[-1] <= 0:
        return 0.0
    precision = np.divide(tps, total, out=np.zeros_like(tps), where=total > 0)
    return float(np.dot(np.diff(tps, prepend=0.0) / tps[-1], precision))


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
    versions.
    """
    scoring = default_scoring(n_classes) if scoring is None else scoring
    if isinstance(scoring, str) and scoring in _FAST_METRICS:
        return _FAST_METRICS[scoring]
    identity = _ProbaInput(np.arange(n_classes))
    scorer = check_scoring(identity, scoring=scoring)

    def score(y, proba, sample_weight):
        return float(scorer(identity, proba, y, sample_weight=sample_weight))

    return score


# ---------------------------------------------------------------------------
# candidates: fit(R, y, labeled, weights) and predict_proba(R), on the layout of R
# ---------------------------------------------------------------------------


class CFCandidate:
    """The CF-Ensemble model with some parameters overridden (missing entries: zero confidence)."""

    handles_missing = True

    def __init__(self, params, seed, **overrides):
        self.params = {**params, **overrides}
        self.seed = seed

    def fit(self, R, y, labeled, weights, n_classes):
        self.model_, _ = fit_cf(R, y, labeled, weights, n_classes=n_classes,
                                params=self.params, seed=self.seed)
        return self

    def predict_proba(self, R):
        return cf_predict_proba(self.model_, R)


class PoolCandidate:
    """Log-linear pool of the base models (non-negative logit stacking)."""

    def fit(self, R, y, labeled, weights, n_classes):
        self.n_classes_ = n_classes
        self.weights_, self.intercept_ = fit_log_linear_pool(
            _log_proba_blocks(R[labeled], n_classes), y[labeled], weights[labeled], n_classes
        )
        return self

    def predict_proba(self, R):
        F = _log_proba_blocks(R, self.n_classes_)
        return pool_proba(F, self.weights_, self.intercept_, self.n_classes_)


class StackingCandidate:
    """scikit-learn's StackingClassifier final estimator: LogisticRegression() on R itself."""

    def fit(self, R, y, labeled, weights, n_classes):
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(max_iter=1000).fit(
            R[labeled], y[labeled], sample_weight=weights[labeled]
        )
        self.n_classes_ = n_classes
        return self

    def predict_proba(self, R):
        proba = np.zeros((len(R), self.n_classes_))
        proba[:, self.model_.classes_] = self.model_.predict_proba(R)
        return proba


class AverageCandidate:
    """Calibrated weighted average of base models' probabilities.

    ``counts=None`` runs greedy ensemble selection (Caruana et al. 2004) on
    the training rows to choose the counts; fixed ``counts`` (one model: a
    single base estimator) are used as given. The average is then mapped
    through a one-feature log-linear pool (Platt or temperature scaling).
    """

    def __init__(self, counts=None, scorer=None, n_steps=_GREEDY_STEPS):
        self.counts = counts
        self.scorer = scorer
        self.n_steps = n_steps

    def _probas(self, R):
        """(n_models, n, K) probabilities of the base models."""
        m = R.shape[1] // (1 if self.n_classes_ == 2 else self.n_classes_)
        return np.stack([model_proba(R, self.n_classes_, j) for j in range(m)])

    def _features(self, probas):
        """Pool features of the counts-weighted average of ``probas``."""
        average = np.tensordot(self.counts_ / self.counts_.sum(), probas, axes=1)
        columns = average[:, 1:] if self.n_classes_ == 2 else average
        return _log_proba_blocks(columns, self.n_classes_)

    def fit(self, R, y, labeled, weights, n_classes):
        self.n_classes_ = n_classes
        probas = self._probas(R[labeled])
        y, w = y[labeled], weights[labeled]
        if self.counts is None:
            self.counts_ = greedy_selection(probas, y, w, self.scorer, self.n_steps)
        else:
            self.counts_ = np.asarray(self.counts, dtype=float)
        self.weights_, self.intercept_ = fit_log_linear_pool(
            self._features(probas), y, w, n_classes
        )
        return self

    def predict_proba(self, R):
        F = self._features(self._probas(R))
        return pool_proba(F, self.weights_, self.intercept_, self.n_classes_)


class FactorCandidate:
    """One-factor model of the base models' logits, fitted on every row, labeled or not.

    Each model's logit is ``mu_j + lambda_j z + noise_j`` with independent
    noise (scikit-learn's :class:`~sklearn.decomposition.FactorAnalysis`);
    when the models' errors are independent given the class, ``z`` carries
    the class and its posterior mean weights model ``j`` by
    ``lambda_j / psi_j``, the spectral meta-learner's idea (Parisi et al.
    2014). The unlabeled rows estimate the loadings and noise variances; the
    labeled rows only orient and calibrate the score (a one-feature
    log-linear pool), so with few labels it has two parameters to learn.
    Binary problems only.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def _score(self, F):
        """(n, 1) oriented factor score of logit features ``F``."""
        return self.factor_.transform(F) * self.sign_

    def fit(self, R, y, labeled, weights, n_classes):
        from sklearn.decomposition import FactorAnalysis

        F = _log_proba_blocks(R, 2)
        self.factor_ = FactorAnalysis(1, random_state=self.seed).fit(F)
        # oriented without labels: base models better than chance load positively
        self.sign_ = 1.0 if self.factor_.components_.sum() >= 0 else -1.0
        self.weights_, self.intercept_ = fit_log_linear_pool(
            self._score(F[labeled]), y[labeled], weights[labeled], 2
        )
        return self

    def predict_proba(self, R):
        return pool_proba(self._score(_log_proba_blocks(R, 2)), self.weights_, self.intercept_, 2)


class IndicatorCandidate:
    """Logistic regression on mean-imputed logits plus missingness indicators.

    The features are the base models' logits (log-probabilities for K
    classes), each missing one replaced by its column's mean over the
    training rows, and one 0/1 column per base model that is 1 where that
    model's prediction is missing (scikit-learn's
    ``SimpleImputer(add_indicator=True)``, one indicator per model rather
    than per column). LogisticRegression() as StackingClassifier's final
    estimator. It reads the missing entries itself: ``handles_missing``.
    """

    handles_missing = True

    def _logits(self, R):
        """(n, m) or (n, m K) logit features of ``R``, NaN where a prediction is missing."""
        return _log_proba_blocks(R, self.n_classes_).reshape(len(R), -1)

    def _features(self, F):
        """Logit features ``F`` mean-imputed, plus one missingness column per base model."""
        missing = np.isnan(F)
        filled = np.where(missing, self.means_, F)
        per_model = missing.reshape(len(F), self.n_models_, -1).any(axis=2)
        return np.hstack([filled, per_model.astype(float)])

    def fit(self, R, y, labeled, weights, n_classes):
        from sklearn.linear_model import LogisticRegression

        self.n_classes_ = n_classes
        self.n_models_ = R.shape[1] // (1 if n_classes == 2 else n_classes)
        F = self._logits(R)
        seen = ~np.isnan(F)
        counts = seen.sum(axis=0)
        # a column with no prediction on these rows is imputed by 0 (p = 1/2, or 1/K)
        self.means_ = np.divide(np.where(seen, F, 0.0).sum(axis=0), counts,
                                out=np.zeros(F.shape[1]), where=counts > 0)
        self.model_ = LogisticRegression(max_iter=1000).fit(
            self._features(F[labeled]), y[labeled], sample_weight=weights[labeled]
        )
        return self

    def predict_proba(self, R):
        proba = np.zeros((len(R), self.n_classes_))
        proba[:, self.model_.classes_] = self.model_.predict_proba(
            self._features(self._logits(R)))
        return proba


def greedy_selection(probas, y, sample_weight, scorer, n_steps=_GREEDY_STEPS):
    """Counts of greedy ensemble selection with replacement (Caruana et al. 2004).

    Starts from the best single model and adds, one step at a time, the
    model whose inclusion in the average scores best; returns the counts of
    the best-scoring step.

    Parameters
    ----------
    probas : ndarray of shape (n_models, n_samples, n_classes)
    y, sample_weight : ndarray of shape (n_samples,)
    scorer : callable
        ``scorer(y, proba, sample_weight)``, greater is better (:func:`get_scorer`).

    Returns
    -------
    counts : ndarray of shape (n_models,)
    """
    m = len(probas)
    counts = np.zeros(m)
    total = np.zeros_like(probas[0])
    best_score, best_counts = -np.inf, None
    for step in range(n_steps):
        trial = [scorer(y, (total + probas[j]) / (step + 1), sample_weight) for j in range(m)]
        j = int(np.argmax(trial))
        counts[j] += 1
        total += probas[j]
        if trial[j] > best_score:
            best_score, best_counts = trial[j], counts.copy()
    return best_counts


def candidate_library(names, n_classes, cf_params, seed, scorer, semi_supervised=False,
                      missing=False):
    """The documented candidate library: ``[(name, candidate), ...]``, ``cf`` first.

    ``semi_supervised`` (some rows unlabeled) adds, for binary problems
    (where they were measured), two candidates that stay robust with few labels: ``factor``
    (:class:`FactorCandidate`, which reads the unlabeled rows) and ``voting``
    (the calibrated mean of the base models' probabilities). ``missing``
    (the matrix has missing predictions) adds ``missing_indicators``
    (:class:`IndicatorCandidate`).
    """
    library = [("cf", CFCandidate(cf_params, seed))]
    if cf_params["latent_dim"] != n_classes:
        library.append((f"cf(latent_dim={n_classes})",
                        CFCandidate(cf_params, seed, latent_dim=n_classes)))
    library += [
        ("stacking", StackingCandidate()),
        ("nonneg_logit", PoolCandidate()),
        ("greedy", AverageCandidate(scorer=scorer)),
    ]
    library += [(f"single:{name}", AverageCandidate(counts=np.eye(len(names))[j]))
                for j, name in enumerate(names)]
    if semi_supervised and n_classes == 2:
        library += [("factor", FactorCandidate(seed)),
                    ("voting", AverageCandidate(counts=np.ones(len(names))))]
    if missing:
        library.append(("missing_indicators", IndicatorCandidate()))
    return library


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


def _fit_on_fold(candidate, R, train, test, y, labeled, weights, n_classes):
    """A copy of ``candidate`` fitted on rows ``train``: its probabilities of rows ``test``
    and its fit seconds."""
    candidate = copy.deepcopy(candidate)
    start = time.perf_counter()
    candidate.fit(R[train], y[train], labeled[train], weights[train], n_classes)
    elapsed = time.perf_counter() - start
    return candidate.predict_proba(R[test]), elapsed


def select(R, y, labeled, weights, *, library, scorer, n_classes, n_splits=5, n_repeats=1,
           random_state=None, verbose=0, R_complete=None, groups=None, n_jobs=None):
    """Score every candidate by (repeated) stratified K-fold on the labeled rows of ``R``.

    With ``groups`` (one label per row of ``R``) the folds are
    :class:`~sklearn.model_selection.StratifiedGroupKFold`'s, shuffled anew
    for each repeat: no group is split between a candidate's fit and the
    rows it is scored on.

    Unlabeled rows are training rows of every fold (the CF candidates'
    factorization uses them; the others ignore them). The out-of-fold
    probabilities of each repeat are pooled and scored once: with few
    labeled rows of a class that is far less noisy than a mean of fold
    scores, which are reported too.

    Every (candidate, fold) fit is one task on a copy of the candidate, run
    in ``n_jobs`` joblib jobs; with ``n_jobs=None`` (and no joblib context
    that sets more), in as many threads as BLAS may use, each task with one
    BLAS thread, as ALS runs its row blocks (so ``threadpoolctl`` limits
    and ``OMP_NUM_THREADS`` govern them). The results do not depend on
    ``n_jobs`` or on the threads.

    Returns
    -------
    results : dict
        ``cv_results_``-like: ``candidate``, ``pooled_test_score`` (what the
        choice uses, averaged over repeats), ``mean_test_score``,
        ``std_test_score`` and ``split{k}_test_score`` over the folds,
        ``rank_test_score`` (by the pooled score) and ``mean_fit_time``
        (seconds per fold). With ``verbose``, one line per candidate once it is scored.
    oof : ndarray of shape (n_candidates, n_repeats, n_labeled, n_classes)
        Every candidate's out-of-fold probabilities of the labeled rows.
    """
    lab_idx = np.flatnonzero(labeled)
    unl_idx = np.flatnonzero(~labeled)
    y_lab, w_lab = y[lab_idx], weights[lab_idx]
    folds = inner_folds(y_lab, None if groups is None else np.asarray(groups)[lab_idx],
                        n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)

    def matrix(candidate):
        complete = R_complete is None or getattr(candidate, "handles_missing", False)
        return R if complete else R_complete

    tasks = [(candidate, matrix(candidate), np.concatenate([lab_idx[train], unl_idx]),
              lab_idx[test], y, labeled, weights, n_classes)
             for _, candidate in library for train, test in folds]
    if n_jobs is None and effective_n_jobs(None) == 1:
        fitted = map_in_threads(_fit_on_fold, tasks)
    else:
        fitted = Parallel(n_jobs=n_jobs)(delayed(_fit_on_fold)(*task) for task in tasks)
    oof = np.empty((len(library), n_repeats, len(lab_idx), n_classes))
    fold_scores = np.empty((len(library), len(folds)))
    fit_time = np.zeros(len(library))
    pooled = np.empty(len(library))
    for c, (name, _) in enumerate(library):
        for k, (_, test) in enumerate(folds):
            proba, elapsed = fitted[c * len(folds) + k]
            fit_time[c] += elapsed
            oof[c, k // n_splits, test] = proba
            fold_scores[c, k] = scorer(y_lab[test], proba, w_lab[test])
        pooled[c] = np.mean([scorer(y_lab, oof[c, r], w_lab) for r in range(n_repeats)])
        if verbose:
            print(f"[selection] {name}: pooled out-of-fold score {pooled[c]:.4f}, "
                  f"{len(folds)} fits in {fit_time[c]:.2f} s")
    results = {
        "candidate": [name for name, _ in library],
        "pooled_test_score": pooled,
        "mean_test_score": fold_scores.mean(axis=1),
        "std_test_score": fold_scores.std(axis=1),
        **{f"split{k}_test_score": fold_scores[:, k] for k in range(len(folds))},
        "rank_test_score": (np.argsort(np.argsort(-pooled, kind="stable")) + 1).astype(np.int32),
        "mean_fit_time": fit_time / len(folds),
    }
    return results, oof


def candidate_features(probas, n_classes):
    """Pool features of candidates' outputs ``probas`` (n_candidates, n, K).

    Binary: (n, n_candidates) logits of the positive class; K classes:
    (n, n_candidates, K) log-probabilities (both clipped as the base models' are).
    """
    if n_classes == 2:
        return _log_proba_blocks(probas[:, :, 1].T, 2)
    return np.log(np.clip(probas, _CLIP, 1.0)).transpose(1, 0, 2)


class SuperLearner:
    """Continuous Super Learner: a non-negative log-linear pool of fitted candidates.

    ``predict_proba`` pools the members' probabilities with the weights that
    :func:`super_learner_weights` fitted on their out-of-fold predictions.
    """

    def __init__(self, members, weights, intercept, n_classes):
        self.members = members
        self.weights = weights
        self.intercept = intercept
        self.n_classes = n_classes

    def predict_proba(self, R):
        probas = np.stack([member.predict_proba(R) for member in self.members])
        return pool_proba(candidate_features(probas, self.n_classes), self.weights,
                          self.intercept, self.n_classes)


def pool_members(names, scores, max_singles=_POOL_MAX_SINGLES):
    """Indices of the candidates that enter the pool: all but the screened-out single models.

    Every candidate that is not a single base model (``single:<name>``)
    enters, and of the single models the ``max_singles`` with the best
    cross-validated ``scores`` (ties: library order). The pool has one weight
    per member fitted on the same out-of-fold rows, so with dozens of base
    models and a few dozen minority rows it would overfit them.
    """
    singles = [c for c, name in enumerate(names) if name.startswith("single:")]
    screened = set(sorted(singles, key=lambda c: -scores[c])[max_singles:])
    return np.array([c for c in range(len(names)) if c not in screened])


def super_learner_weights(oof, y, sample_weight, n_classes, alpha=_POOL_ALPHA):
    """Non-negative pool weights and intercepts of the candidates, from their out-of-fold output.

    The repeats' predictions are stacked as rows, so every labeled row counts
    once per repeat.

    Parameters
    ----------
    oof : ndarray of shape (n_candidates, n_repeats, n_samples, n_classes)
    y, sample_weight : ndarray of shape (n_samples,)
    alpha : float, default=_POOL_ALPHA
        L2 penalty of the weights (:func:`fit_log_linear_pool`).

    Returns
    -------
    weights : ndarray of shape (n_candidates,)
    intercept : ndarray of shape (1,) or (n_classes,)
    """
    n_repeats = oof.shape[1]
    F = np.concatenate([candidate_features(oof[:, r], n_classes) for r in range(n_repeats)])
    return fit_log_linear_pool(F, np.tile(y, n_repeats), np.tile(sample_weight, n_repeats),
                               n_classes, alpha)
