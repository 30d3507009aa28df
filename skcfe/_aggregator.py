"""The supervised aggregator: from reconstructed probabilities to the answer.

'weighted' is a linear model of the reconstructed probability matrix with a
sigmoid (binary) or softmax (K classes) link, trained to convergence with
L-BFGS on the exact gradient of the weighted focal loss. 'mean' averages the
reconstructed probabilities of the estimators and learns nothing.
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, softmax

from ._losses import _focal_terms

AGGREGATORS = ("weighted", "mean")

# Averaged probabilities of exactly 0 or 1 would give infinite logits.
_EPS = 1e-12


def n_outputs(n_classes):
    """Logits the aggregator produces: one for binary problems, else K."""
    return 1 if n_classes == 2 else n_classes


def raw_scores(F, coef, intercept):
    """Aggregator logits, shape (n,) for binary problems and (n, K) otherwise."""
    raw = F @ coef.T + intercept
    return raw[:, 0] if coef.shape[0] == 1 else raw


def raw_to_proba(raw):
    """Class probabilities (n, K) from :func:`raw_scores`."""
    if raw.ndim == 1:
        p = expit(raw)
        return np.column_stack([1.0 - p, p])
    return softmax(raw, axis=1)


def mean_proba(R_hat, n_classes):
    """Average of the estimators' reconstructed probabilities, as (n, K)."""
    clipped = np.clip(R_hat, 0.0, 1.0)
    if n_classes == 2:
        p = clipped.mean(axis=1)
        return np.column_stack([1.0 - p, p])
    per_class = clipped.reshape(len(R_hat), -1, n_classes).mean(axis=1)
    total = per_class.sum(axis=1, keepdims=True)
    uniform = np.full_like(per_class, 1.0 / n_classes)
    return np.divide(per_class, total, out=uniform, where=total > 0)


def aggregate(R_hat, aggregator, coef, intercept, n_classes):
    """Aggregator logits of reconstructed probabilities, for either aggregator.

    'mean' returns the logits (binary) or log-probabilities of the averaged
    probabilities, so both aggregators go through :func:`raw_to_proba`.
    """
    if aggregator == "weighted":
        return raw_scores(R_hat, coef, intercept)
    p = np.clip(mean_proba(R_hat, n_classes), _EPS, 1.0 - _EPS)
    return np.log(p[:, 1] / p[:, 0]) if n_classes == 2 else np.log(p)


def prior_intercept(y, sample_weight, n_classes):
    """Log prior of the weighted classes (RetinaNet's bias initialization).

    Starting at the prior keeps the first steps stable under heavy imbalance:
    the rare class starts at its own frequency instead of 1/2.
    """
    counts = np.bincount(y, weights=sample_weight, minlength=n_classes)
    prior = np.clip(counts / counts.sum(), 1e-12, None)
    if n_classes == 2:
        return np.array([np.log(prior[1] / prior[0])])
    return np.log(prior)


def supervised_loss(raw, y, sample_weight, gamma):
    """Weighted mean focal loss of aggregator logits ``raw``."""
    loss, _ = _focal_terms(y, raw, gamma)
    return float(np.dot(sample_weight, loss) / sample_weight.sum())


def fit_weighted(F, y, sample_weight, coef, intercept, *, gamma, alpha, max_iter=1000):
    """Train the 'weighted' aggregator to convergence, warm-started.

    Minimizes ``sum_i s_i FL_gamma(p_i, y_i) / sum_i s_i + alpha / 2 |coef|^2``.

    Returns
    -------
    coef : ndarray of shape (n_outputs, n_columns)
    intercept : ndarray of shape (n_outputs,)
    """
    k, q = coef.shape
    weights = sample_weight / sample_weight.sum()

    def objective(theta):
        W = theta[: k * q].reshape(k, q)
        b = theta[k * q :]
        loss, grad = _focal_terms(y, raw_scores(F, W, b), gamma)
        g = (grad * weights if grad.ndim == 1 else grad * weights[:, None]).reshape(len(y), k)
        value = np.dot(weights, loss) + 0.5 * alpha * np.sum(W * W)
        grad_W = g.T @ F + alpha * W
        return value, np.concatenate([grad_W.ravel(), g.sum(axis=0)])

    theta0 = np.concatenate([coef.ravel(), intercept])
    solution = minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-14},
    )
    if not np.all(np.isfinite(solution.x)):
        raise ValueError(
            "The aggregator's weights became non-finite. The reconstructed "
            "probabilities are degenerate; increase aggregator_alpha or lambda_reg."
        )
    return solution.x[: k * q].reshape(k, q), solution.x[k * q :]
