"""Alternating least squares backend (numpy/scipy, the default).

Each sweep makes two closed-form ridge updates, batched over all rows:

1. instance step: every row's factors ``Y`` given the classifier factors ``X``;
2. classifier step: every column's factors ``X`` given ``Y``;

then balances the pair (below), computes the fold-in features of the labeled
rows (exactly what predict computes for a new row) and updates the aggregator
on them by two Newton steps from the previous sweep's weights. The sweeps stop
when the relative change of the exact objective falls below ``tol``; the
aggregator is then trained to convergence on the final features.

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

Balancing
---------
``Y X^T`` is unchanged by ``Y -> Y A``, ``X -> X A^-T`` for any invertible
``A``, while the ridge term is not. Plain ALS moves along this gauge only as
fast as ``lambda_reg`` pulls, so with a small ``lambda_reg`` it needs hundreds
of sweeps to settle where the ridge term is smallest (digits: 159 sweeps to a
relative change of 1e-4). After every sweep :func:`balance` jumps there in
closed form (by a QR and an SVD of small matrices), which leaves the data
term as it is and can only lower the ridge term, so ``L_fac`` still never
increases (digits: 3 sweeps).
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

# Newton steps the aggregator takes per sweep while the factors still move.
_TRACKING_NEWTON_STEPS = 2


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
        # Entries without confidence (missing predictions) get no label weight either.
        agree = agreement_with_labels(R, problem.T) * (problem.C > 0)
        V = V + ((1.0 - rho) / (q * mean_class_weight)) * class_weight[:, None] * agree
    return V, row_share


def factor_sweep(R, V, row_share, X, lambda_reg):
    """One ALS sweep: the instance step, then the classifier step."""
    Y = ridge_solve(R, V, X, lambda_reg)
    # The classifier step reads R and V transposed in place; the rows' shares
    # weigh its observations (no weighted copy of V).
    X = ridge_solve(R.T, V.T, Y, lambda_reg, obs_weight=R.shape[1] * row_share)
    return Y, X


def balance(Y, X, row_share):
    """Classifier factors with the same product ``Y X^T`` and the smallest ridge term.

    The ridge term of ``L_fac``, ``sum_i w~_i |y_i|^2 + |X|^2 / q``, is smallest
    over all factor pairs with the product ``P = diag(w~)^1/2 Y X^T / sqrt(q)``
    when both sides are ``U S^1/2`` and ``V S^1/2`` from the singular value
    decomposition ``P = U S V^T``: it is then ``2 tr(S)``, a nuclear norm.
    With ``diag(w~)^1/2 Y = Q R_Y`` (QR, only ``R_Y`` is needed),
    ``P = Q (R_Y X^T / sqrt(q))``, so the small factor ``R_Y X^T / sqrt(q)``
    gives ``S`` and ``V`` without squaring any condition number. Latent
    dimensions the ridge has switched off (``S = 0``, or ``latent_dim`` above
    the rank) come back as zero columns.

    Only the classifier factors are returned: the next instance step solves
    for ``Y`` exactly, which can only lower ``L_fac`` further.
    """
    q, d = X.shape
    R_Y = np.linalg.qr(Y * np.sqrt(row_share)[:, None], mode="r")
    _, S, Vt = np.linalg.svd(R_Y @ X.T / np.sqrt(q), full_matrices=False)
    # Each singular vector's sign, fixed by its largest entry, so that equal
    # products give equal factors (weighting rows or repeating them).
    signs = np.sign(Vt[np.arange(len(S)), np.argmax(np.abs(Vt), axis=1)])
    balanced = np.zeros((q, d))
    rank = min(len(S), d)
    balanced[:, :rank] = (Vt[:rank] * np.where(signs[:rank] == 0, 1.0, signs[:rank])[:, None]).T
    balanced[:, :rank] *= np.sqrt(q * S[:rank])
    return balanced


def balanced_sweep(R, V, row_share, X, lambda_reg):
    """One sweep as :func:`fit` runs it: :func:`factor_sweep`, then :func:`balance`."""
    Y, X = factor_sweep(R, V, row_share, X, lambda_reg)
    return balance(Y, X, row_share)


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

    weighted = settings.aggregator == "weighted"

    def represent(X):
        """The labeled rows' fold-in reconstruction, its features and the reconstruction term."""
        Y = fold_in(R, problem.C_free, X, lam, problem.confidence_scale)
        R_hat = Y @ X.T
        F = features(R_hat[labeled], settings.aggregator_input) if weighted else None
        return R_hat[labeled], F, reconstruction_loss(R, problem.C, Y, X, problem.row_weight, lam)

    def train(R_lab, F, coef, intercept, newton_steps):
        """The aggregator updated on features ``F``, and its supervised term."""
        if weighted:
            coef, intercept = fit_weighted(
                F, y, s, coef, intercept, gamma=settings.focal_gamma,
                alpha=settings.aggregator_alpha, newton_steps=newton_steps,
            )
        raw = aggregate(
            R_lab, settings.aggregator, coef, intercept, problem.n_classes,
            settings.aggregator_input,
        )
        return coef, intercept, supervised_loss(raw, y, s, settings.focal_gamma)

    converged = False
    n_iter = 0
    for n_iter in range(1, settings.max_iter + 1):
        X = balanced_sweep(R, V, row_share, X, lam)
        R_lab, F, reconstruction = represent(X)
        # The factors do not depend on the aggregator, which only has to track
        # its moving optimum here (a few Newton steps from the last sweep's
        # weights); it is solved to full precision once the factors settle.
        coef, intercept, supervised = train(R_lab, F, coef, intercept, _TRACKING_NEWTON_STEPS)
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
    if weighted:
        # Full precision on the last sweep's features; the history ends with
        # the exact objective of the returned model.
        coef, intercept, supervised = train(R_lab, F, coef, intercept, None)
        history["supervised"][-1] = supervised
        history["objective"][-1] = combine(settings.rho, reconstruction, supervised)
    return BackendResult(
        classifier_factors=X,
        coef=coef,
        intercept=intercept,
        n_iter=n_iter,
        converged=converged,
        history=history,
    )

