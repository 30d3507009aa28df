"""The Super Learner's pool: non-negative log-linear pools of probabilities.

:func:`fit_log_linear_pool` fits ``log p_k = sum_j w_j F_jk + b_k`` with
``w >= 0``; the non-negative logit stacking candidate pools the base
models this way, the calibrated averages pool one feature, and
:func:`super_learner_weights` pools the candidates themselves on their
out-of-fold predictions (the continuous Super Learner of van der Laan,
Polley and Hubbard 2007). With many base models only the best-scoring
single models enter the pool (:func:`pool_members`).
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, logit, softmax

from .._threads import one_blas_thread

# Probabilities are clipped to [_CLIP, 1 - _CLIP] before their logarithm:
# trees and forests output exact 0 and 1.
_CLIP = 1e-4

# L2 penalty of the log-linear pool's weights, on the summed-loss scale (1/C
# of LogisticRegression).
_POOL_ALPHA = 1.0

# Single base models that may enter the Super Learner's pool: the best
# scoring ones, as many as the default set has base models. With 20-60
# base models, screening the rest out gained 0.008 PR-AUC on held-out
# training rows (benchmarks/README.md, "Tried and not adopted" lists the rest).
_POOL_MAX_SINGLES = 5


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
    # One BLAS thread: these products are too small to share (on a loaded 2-core
    # machine, 50,000 rows x 14 candidates took 1 s with two threads and 0.04 s with one).
    with one_blas_thread():
        solution = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": 500, "gtol": 1e-8})
    return solution.x[:m], solution.x[m:]


def pool_proba(F, w, b, n_classes):
    """(n, K) probabilities of a fitted log-linear pool."""
    if n_classes == 2:
        p = expit(F @ w + b[0])
        return np.column_stack([1.0 - p, p])
    return softmax(np.einsum("imk,m->ik", F, w) + b, axis=1)


def candidate_features(probas, n_classes):
    """Pool features of candidates' outputs ``probas`` (n_candidates, n, K).

    Binary: (n, n_candidates) logits of the positive class; K classes:
    (n, n_candidates, K) log-probabilities (both clipped as the base models' are).
    """
    if n_classes == 2:
        return logit(np.clip(probas[:, :, 1].T, _CLIP, 1.0 - _CLIP))
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

    @property
    def handles_missing(self):
        return all(getattr(member, "handles_missing", False) for member in self.members)

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
