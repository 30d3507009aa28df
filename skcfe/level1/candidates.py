"""Level-1 candidates: every model that combines the out-of-fold matrix ``R``.

Each candidate is a cloneable object (``get_params``, ``set_params``) with
one interface:

- ``fit(R, y, labeled, sample_weight, context)``: ``R`` of shape
  (n_samples, n_columns), ``y`` the encoded labels (read on labeled rows
  only), ``labeled`` a boolean mask, ``context`` a :class:`Level1Context`
  (the number of classes, the base models' names, the CF aggregator's
  configuration, the seed and the selection's scorer);
- ``predict_proba(R)``: (n_samples, n_classes) probabilities;
- ``handles_missing``: whether it reads missing entries (NaN) itself; the
  others are fed a completed matrix.

:func:`default_candidates` lists skcfe's documented library:

- ``cf``: the CF-Ensemble aggregator as configured (:class:`CFCandidate`),
  and ``cf(latent_dim=K)``, the same with one latent factor per class;
- ``stacking``: StackingClassifier's final estimator, LogisticRegression()
  on the probabilities (:class:`EstimatorCandidate`, which wraps any
  scikit-learn classifier the same way);
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
is used, ``predict_proba`` estimates ``p(y | x)``.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.special import logit
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import has_fit_parameter

from .._cf import cf_complete, cf_predict_proba, fit_cf
from .pool import _CLIP, fit_log_linear_pool, pool_proba

# Forward-selection steps of greedy ensemble selection (auto-sklearn's
# ensemble size is 50; the best prefix is kept, so more steps only cost time).
_GREEDY_STEPS = 25


@dataclass(frozen=True)
class Level1Context:
    """What a candidate's ``fit`` may read besides the data.

    Attributes
    ----------
    n_classes : int
    names : tuple of str
        The base models' names, in the column order of ``R``.
    cf_params : dict
        The estimator's CF configuration (:data:`~skcfe._cf.CF_PARAMETERS`).
    seed : int
        Seeds the CF candidates' and the factor model's initialization.
    scorer : callable
        The selection's criterion, ``scorer(y, proba, sample_weight)``.
    greedy_scorer : callable or None
        What greedy ensemble selection scores its steps by; None: ``scorer``.
        A selection on a subsample of many rows sets the binned average
        precision (:func:`~skcfe.level1.selection.binned_average_precision`).
    """

    n_classes: int
    names: tuple
    cf_params: dict = field(repr=False)
    seed: int
    scorer: object = field(repr=False)
    greedy_scorer: object = field(default=None, repr=False)


def log_proba_features(R, n_classes):
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


def n_models(R, n_classes):
    """Number of base models whose columns ``R`` holds."""
    return R.shape[1] // (1 if n_classes == 2 else n_classes)


class Level1Candidate(BaseEstimator):
    """Base of skcfe's level-1 candidates (the interface in this module's docstring)."""

    handles_missing = False

    def fit(self, R, y, labeled, sample_weight, context):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, R):  # pragma: no cover - abstract
        raise NotImplementedError


class CFCandidate(Level1Candidate):
    """The CF-Ensemble aggregator as the estimator is configured, some parameters overridden.

    ``CFCandidate()`` is the configured aggregator itself; ``CFCandidate(latent_dim=3)``
    the same with three factors. Any CF parameter of the estimator can be
    overridden (``rho``, ``focal_gamma``, ``aggregator_alpha``, ...). Missing
    entries get zero confidence (``handles_missing``).
    """

    handles_missing = True

    def __init__(self, **overrides):
        self.overrides = overrides

    def get_params(self, deep=True):
        return dict(self.overrides)

    def set_params(self, **params):
        self.overrides = {**self.overrides, **params}
        return self

    def __repr__(self, N_CHAR_MAX=700):
        args = ", ".join(f"{key}={value!r}" for key, value in self.overrides.items())
        return f"CFCandidate({args})"

    @classmethod
    def from_model(cls, model):
        """A CFCandidate already fitted: ``model`` (a :class:`~skcfe._cf.CFModel`)."""
        candidate = cls()
        candidate.model_ = model
        return candidate

    def fit(self, R, y, labeled, sample_weight, context):
        params = {**context.cf_params, **self.overrides}
        self.model_, _ = fit_cf(R, y, labeled, sample_weight, n_classes=context.n_classes,
                                params=params, seed=context.seed)
        return self

    def predict_proba(self, R):
        return cf_predict_proba(self.model_, R)


class EstimatorCandidate(Level1Candidate):
    """A scikit-learn classifier on ``R``, as StackingClassifier uses its final estimator.

    Fitted on the labeled rows of ``R`` with their sample weights (unless
    every weight is 1, so that an estimator without ``sample_weight`` works
    unweighted); its ``predict_proba`` columns go to their class, so a fold
    that lacks a class predicts 0 for it.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, R, y, labeled, sample_weight, context):
        self.n_classes_ = context.n_classes
        weights = sample_weight[labeled]
        params = {} if np.all(weights == 1.0) else {"sample_weight": weights}
        if params and not has_fit_parameter(self.estimator, "sample_weight"):
            raise TypeError(
                f"The combiner {type(self.estimator).__name__} does not accept sample_weight "
                "in fit, but the rows have unequal sample_weight. "
                "Fit without sample_weight, or use a combiner whose fit accepts it (e.g. "
                "LogisticRegression)."
            )
        self.estimator_ = clone(self.estimator).fit(R[labeled], y[labeled], **params)
        return self

    def predict_proba(self, R):
        proba = np.zeros((len(R), self.n_classes_))
        proba[:, self.estimator_.classes_] = self.estimator_.predict_proba(R)
        return proba


class StackingCandidate(EstimatorCandidate):
    """StackingClassifier's final estimator on ``R``: ``LogisticRegression(max_iter=1000)``."""

    def __init__(self):
        super().__init__(LogisticRegression(max_iter=1000))

    def get_params(self, deep=True):
        return {}


class NonNegLogitCandidate(Level1Candidate):
    """Log-linear pool of the base models (non-negative logit stacking)."""

    def fit(self, R, y, labeled, sample_weight, context):
        self.n_classes_ = context.n_classes
        self.weights_, self.intercept_ = fit_log_linear_pool(
            log_proba_features(R[labeled], self.n_classes_), y[labeled], sample_weight[labeled],
            self.n_classes_,
        )
        return self

    def predict_proba(self, R):
        F = log_proba_features(R, self.n_classes_)
        return pool_proba(F, self.weights_, self.intercept_, self.n_classes_)


class AverageCandidate(Level1Candidate):
    """Calibrated weighted average of base models' probabilities.

    ``counts=None`` runs greedy ensemble selection (Caruana et al. 2004) on
    the training rows to choose the counts, scored by the context's scorer;
    fixed ``counts`` (one model: a single base estimator; all ones: soft
    voting) are used as given. The average is then mapped through a
    one-feature log-linear pool (Platt or temperature scaling).
    """

    def __init__(self, counts=None, n_steps=_GREEDY_STEPS):
        self.counts = counts
        self.n_steps = n_steps

    def _probas(self, R):
        """(n_models, n, K) probabilities of the base models."""
        return np.stack([model_proba(R, self.n_classes_, j)
                         for j in range(n_models(R, self.n_classes_))])

    def _features(self, probas):
        """Pool features of the counts-weighted average of ``probas``."""
        average = np.tensordot(self.counts_ / self.counts_.sum(), probas, axes=1)
        columns = average[:, 1:] if self.n_classes_ == 2 else average
        return log_proba_features(columns, self.n_classes_)

    def fit(self, R, y, labeled, sample_weight, context):
        self.n_classes_ = context.n_classes
        probas = self._probas(R[labeled])
        y, w = y[labeled], sample_weight[labeled]
        if self.counts is None:
            scorer = context.scorer if context.greedy_scorer is None else context.greedy_scorer
            self.counts_ = greedy_selection(probas, y, w, scorer, self.n_steps)
        else:
            self.counts_ = np.asarray(self.counts, dtype=float)
        self.weights_, self.intercept_ = fit_log_linear_pool(
            self._features(probas), y, w, self.n_classes_
        )
        return self

    def predict_proba(self, R):
        F = self._features(self._probas(R))
        return pool_proba(F, self.weights_, self.intercept_, self.n_classes_)


class FactorCandidate(Level1Candidate):
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

    def _score(self, F):
        """(n, 1) oriented factor score of logit features ``F``."""
        return self.factor_.transform(F) * self.sign_

    def fit(self, R, y, labeled, sample_weight, context):
        from sklearn.decomposition import FactorAnalysis

        F = log_proba_features(R, 2)
        self.factor_ = FactorAnalysis(1, random_state=context.seed).fit(F)
        # oriented without labels: base models better than chance load positively
        self.sign_ = 1.0 if self.factor_.components_.sum() >= 0 else -1.0
        self.weights_, self.intercept_ = fit_log_linear_pool(
            self._score(F[labeled]), y[labeled], sample_weight[labeled], 2
        )
        return self

    def predict_proba(self, R):
        return pool_proba(self._score(log_proba_features(R, 2)), self.weights_, self.intercept_,
                          2)


class IndicatorCandidate(Level1Candidate):
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
        return log_proba_features(R, self.n_classes_).reshape(len(R), -1)

    def _features(self, F):
        """Logit features ``F`` mean-imputed, plus one missingness column per base model."""
        missing = np.isnan(F)
        filled = np.where(missing, self.means_, F)
        per_model = missing.reshape(len(F), self.n_models_, -1).any(axis=2)
        return np.hstack([filled, per_model.astype(float)])

    def fit(self, R, y, labeled, sample_weight, context):
        self.n_classes_ = context.n_classes
        self.n_models_ = n_models(R, self.n_classes_)
        F = self._logits(R)
        seen = ~np.isnan(F)
        counts = seen.sum(axis=0)
        # a column with no prediction on these rows is imputed by 0 (p = 1/2, or 1/K)
        self.means_ = np.divide(np.where(seen, F, 0.0).sum(axis=0), counts,
                                out=np.zeros(F.shape[1]), where=counts > 0)
        self.model_ = LogisticRegression(max_iter=1000).fit(
            self._features(F[labeled]), y[labeled], sample_weight=sample_weight[labeled]
        )
        return self

    def predict_proba(self, R):
        proba = np.zeros((len(R), self.n_classes_))
        proba[:, self.model_.classes_] = self.model_.predict_proba(
            self._features(self._logits(R)))
        return proba


class Completed:
    """A fitted candidate that needs every prediction, fed ``R`` completed by ``completion``.

    ``completion`` is a label-free CF model (:func:`fit_completion`).
    """

    handles_missing = True

    def __init__(self, candidate, completion):
        self.candidate = candidate
        self.completion = completion

    def predict_proba(self, R):
        return self.candidate.predict_proba(cf_complete(self.completion, R))


def fit_completion(R, y, labeled, sample_weight, context):
    """Label-free factorization of every row (``rho=1``) that completes missing entries.

    A confidence that reads labels is replaced by 'certainty', so that no
    label reaches the completion of a row a candidate is scored on.
    """
    params = dict(context.cf_params, rho=1.0, verbose=0)
    if params["confidence"] in ("label_aware", "calibration"):
        params["confidence"] = "certainty"
    model, _ = fit_cf(R, y, labeled, sample_weight, n_classes=context.n_classes, params=params,
                      seed=context.seed)
    return model


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
        ``scorer(y, proba, sample_weight)``, greater is better
        (:func:`~skcfe.level1.selection.get_scorer`).

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


def default_candidates(names, n_classes, *, latent_dim=None, semi_supervised=False,
                       missing=False):
    """skcfe's documented candidate library: ``[(name, candidate), ...]``, ``cf`` first.

    What ``combiner='auto'`` and ``'select'`` choose among; pass the list
    (or a part of it, or with candidates of your own) as ``combiner``.

    Parameters
    ----------
    names : list of str
        The base models' names, in the column order of ``R``.
    n_classes : int
    latent_dim : int or None
        The estimator's ``latent_dim``: unless it is ``n_classes``, a second
        CF candidate with ``latent_dim=n_classes`` is listed.
    semi_supervised : bool
        Some rows are unlabeled: adds, for binary problems (where they were
        measured), two candidates that stay robust with few labels:
        ``factor`` (:class:`FactorCandidate`, which reads the unlabeled rows)
        and ``voting`` (the calibrated mean of the base models' probabilities).
    missing : bool
        The matrix has missing predictions: adds ``missing_indicators``
        (:class:`IndicatorCandidate`).
    """
    candidates = [("cf", CFCandidate())]
    if latent_dim != n_classes:
        candidates.append((f"cf(latent_dim={n_classes})", CFCandidate(latent_dim=n_classes)))
    candidates += [
        ("stacking", StackingCandidate()),
        ("nonneg_logit", NonNegLogitCandidate()),
        ("greedy", AverageCandidate()),
    ]
    candidates += [(f"single:{name}", AverageCandidate(counts=np.eye(len(names))[j]))
                   for j, name in enumerate(names)]
    if semi_supervised and n_classes == 2:
        candidates += [("factor", FactorCandidate()),
                       ("voting", AverageCandidate(counts=np.ones(len(names))))]
    if missing:
        candidates.append(("missing_indicators", IndicatorCandidate()))
    return candidates


def as_candidate(name, obj):
    """``obj`` as a level-1 candidate: itself, or a scikit-learn classifier wrapped."""
    if isinstance(obj, Level1Candidate):
        return obj
    if is_classifier(obj) and hasattr(obj, "fit"):
        if not hasattr(obj, "predict_proba"):
            raise ValueError(
                f"combiner {name!r} ({type(obj).__name__}) has no predict_proba; a level-1 "
                "model must predict probabilities (wrap it in CalibratedClassifierCV)."
            )
        return EstimatorCandidate(obj)
    raise TypeError(
        f"combiner {name!r} is {obj!r}: expected a scikit-learn classifier with "
        "predict_proba or a skcfe.level1 candidate (CFCandidate, ...)."
    )
