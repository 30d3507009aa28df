"""Alternating least squares backend (numpy/scipy, the default).

Each sweep makes two closed-form ridge updates, batched over all rows:

1. instance step: every row's factors ``Y`` given the classifier factors ``X``;
2. classifier step: every column's factors ``X`` given ``Y``;

then computes the fold-in features of the labeled rows (exactly what predict
computes for a new row) and trains the aggregator on them to convergence with
L-BFGS, warm-started from the previous sweep.

The ALS approximation
---------------------
Alternating ridge steps can only minimize a least-squares objective, so the
factor steps minimize a surrogate in which supervision enters through the
confidence weights only:

    L_fac = rho * sum_iu w~_i c_iu (r_iu - y_i . x_u)^2 / (q cbar)
          + (1 - rho) * sum_{i labeled} w~_i k_i a_iu (r_iu - y_i . x_u)^2 / (q sbar)
          + lambda_reg * (sum_i w~_i |y_i|^2 + |X|^2 / q)

with ``w~`` the sample weights normalized to sum 1, ``c`` the confidence
(mean ``cbar``), ``k_i`` the class weight of row ``i``, ``a_iu`` the
probability column ``u`` gives to the observed label and ``sbar`` the
weighted mean of ``k``. Entries the estimators got right are reproduced more
faithfully as ``rho`` decreases: that is how the labels shape the classifier
factors. The aggregator's focal loss does not reach the factors; the torch
backend minimizes the exact objective instead. ``L_fac`` never increases
from one sweep to the next, since both steps minimize it exactly.
"""

import numpy as np

from .._aggregator import (
    aggregate,
    features,
    fit_weighted,
    n_outputs,
    prior_intercept,
    supervised_loss,
)
from .._confidence import agreement_with_labels
from .._objective import combine, reconstruction_loss
from ._result import BackendResult, fold_in, ridge_solve


def initial_factors(R, row_weight, latent_dim, rng):
    """Classifier factors from the top eigenvectors of the weighted Gram matrix.

    Deterministic and invariant to repeating rows versus weighting them. When
    latent_dim exceeds the number of columns, the extra dimensions start as
    small noise drawn from ``rng``.
    """
    q = R.shape[1]
    gram = R.T @ (R * (row_weight / row_weight.sum())[:, None])
    values, vectors = np.linalg.eigh(gram)
    values, vectors = values[::-1], vectors[:, ::-1]
    # Fix the sign of each eigenvector so equal inputs give equal factors.
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(q)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    k = min(latent_dim, q)
    X = np.empty((q, latent_dim))
    X[:, :k] = vectors[:, :k] * np.clip(values[:k], 1e-12, None) ** 0.25
    if latent_dim > k:
        X[:, k:] = 1e-2 * rng.standard_normal((q, latent_dim - k))
    return X


def factor_weights(problem, rho):
    """Per-entry weights of the ALS surrogate for the instance step.

    Returns ``V`` normalized per row (so a row's weight cancels in its own
    ridge problem) and ``row_share`` (``w~_i``), which weighs rows against each
    other in the classifier step.
    """
    R, w = problem.R, problem.row_weight
    q = R.shape[1]
    row_share = w / w.sum()
    V = (rho / (q * problem.confidence_scale)) * problem.C
    if rho < 1.0 and problem.labeled.any():
        class_weight = np.divide(
            problem.sample_weight, w, out=np.zeros_like(w), where=(w > 0) & problem.labeled
        )
        mean_class_weight = np.dot(row_share, class_weight) / row_share[problem.labeled].sum()
        agree = agreement_with_labels(R, problem.T)
        V = V + ((1.0 - rho) / (q * mean_class_weight)) * class_weight[:, None] * agree
    return V, row_share


def factor_sweep(R, V, row_share, X, lambda_reg):
    """One ALS sweep: the instance step, then the classifier step."""
    Y = ridge_solve(R, V, X, lambda_reg)
    XV = (R.shape[1] * row_share[:, None] * V).T
    X = ridge_solve(R.T, XV, Y, lambda_reg)
    return Y, X


def factor_objective(R, V, row_share, X, Y, lambda_reg):
    """``L_fac``, the surrogate that :func:`factor_sweep` never increases."""
    residual = R - Y @ X.T
    data = np.dot(row_share, np.sum(V * residual**2, axis=1))
    ridge = np.dot(row_share, np.sum(Y * Y, axis=1)) + np.sum(X * X) / X.shape[0]
    return float(data + lambda_reg * ridge)


def fit(problem, settings, rng):
    """Fit the factors and the aggregator by ALS; see the module docstring."""
    R, labeled = problem.R, problem.labeled
    y, s = problem.y[labeled], problem.sample_weight[labeled]
    lam = settings.lambda_reg
    V, row_share = factor_weights(problem, settings.rho)
    X = initial_factors(R, problem.row_weight, settings.latent_dim, rng)

    k = n_outputs(problem.n_classes)
    coef = np.zeros((k, R.shape[1]))
    if settings.aggregator == "mean":
        coef[:] = 1.0 / (R.shape[1] // (1 if k == 1 else k))
    intercept = prior_intercept(y, s, problem.n_classes) if settings.aggregator == "weighted" else np.zeros(k)

    history = {"objective": [], "reconstruction": [], "supervised": []}
    converged = False
    n_iter = 0
    for n_iter in range(1, settings.max_iter + 1):
        _, X = factor_sweep(R, V, row_share, X, lam)
        Y = fold_in(R, problem.C_free, X, lam, problem.confidence_scale)
        R_hat = Y @ X.T
        if settings.aggregator == "weighted":
            coef, intercept = fit_weighted(
                features(R_hat[labeled], settings.aggregator_input), y, s, coef, intercept,
                gamma=settings.focal_gamma, alpha=settings.aggregator_alpha,
            )
        raw = aggregate(
            R_hat[labeled], settings.aggregator, coef, intercept, problem.n_classes,
            settings.aggregator_input,
        )
        supervised = supervised_loss(raw, y, s, settings.focal_gamma)
        reconstruction = reconstruction_loss(R, problem.C, Y, X, problem.row_weight, lam)
        objective = combine(settings.rho, reconstruction, supervised)
        if not np.isfinite(objective):
            raise ValueError(
                f"The objective became non-finite at ALS sweep {n_iter}. Check the base "
                "estimators' probabilities, or increase lambda_reg / aggregator_alpha."
            )
        previous = history["objective"][-1] if history["objective"] else np.inf
        for key, value in zip(history, (objective, reconstruction, supervised)):
            history[key].append(value)
        if settings.verbose:
            print(
                f"[ALS] sweep {n_iter}: objective={objective:.6g} "
                f"reconstruction={reconstruction:.6g} supervised={supervised:.6g}"
            )
        if abs(previous - objective) <= settings.tol * max(abs(objective), 1e-12):
            converged = True
            break
    return BackendResult(
        classifier_factors=X,
        coef=coef,
        intercept=intercept,
        n_iter=n_iter,
        converged=converged,
        history=history,
    )

