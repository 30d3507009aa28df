"""What every backend returns, and the numpy maps shared by fit and predict."""

from dataclasses import dataclass, field

import numpy as np

# Largest number of float64 entries a solver workspace holds at once (32 MiB):
# large enough for BLAS-3 efficiency, small enough for a laptop with n = 1e6.
_WORKSPACE_ENTRIES = 1 << 22


@dataclass(frozen=True)
class BackendResult:
    """Fitted state a backend hands back to the estimator (numpy float64 only).

    Attributes
    ----------
    classifier_factors : ndarray of shape (n_columns, latent_dim)
        One row per column of R (the "users" of collaborative filtering).
    coef : ndarray of shape (n_outputs, n_columns)
        Aggregator weights; ``n_outputs`` is 1 for binary problems, else K.
    intercept : ndarray of shape (n_outputs,)
    n_iter : int
        Sweeps (ALS) or epochs (torch) run.
    converged : bool
        Whether the relative change of the objective fell below ``tol``.
    history : dict of str to list of float
        Per iteration: ``objective``, ``reconstruction`` and ``supervised``.
    """

    classifier_factors: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    history: dict = field(default_factory=dict)


def ridge_solve(R, V, F, reg):
    """Solve one weighted ridge regression per row of ``R``, all rows batched.

    Row ``a`` gets ``z_a = (F^T diag(V_a) F + reg I)^-1 F^T (V_a * R_a)``. The
    Gram matrices come from one matrix product ``V @ (F outer F)``, so the
    cost is BLAS-3 bound; both dimensions are processed in chunks that fit a
    fixed workspace.

    Parameters
    ----------
    R, V : ndarray of shape (n_rows, n_obs)
        Targets and their non-negative weights.
    F : ndarray of shape (n_obs, d)
        Fixed factors of the other side.
    reg : float
        Ridge penalty (> 0 keeps every system positive definite).

    Returns
    -------
    Z : ndarray of shape (n_rows, d)
    """
    n_rows, n_obs = R.shape
    d = F.shape[1]
    d2 = d * d
    row_chunk = max(1, min(n_rows, _WORKSPACE_ENTRIES // max(d2, n_obs)))
    obs_chunk = max(1, min(n_obs, _WORKSPACE_ENTRIES // d2))
    gram = np.empty((row_chunk, d2))
    rhs = np.empty((row_chunk, d))
    outer = None if obs_chunk < n_obs else (F[:, :, None] * F[:, None, :]).reshape(n_obs, d2)
    ridge = reg * np.eye(d)
    Z = np.empty((n_rows, d))
    for start in range(0, n_rows, row_chunk):
        rows = slice(start, min(start + row_chunk, n_rows))
        m = rows.stop - rows.start
        G, b = gram[:m], rhs[:m]
        if outer is not None:
            np.matmul(V[rows], outer, out=G)
        else:
            G.fill(0.0)
            for o in range(0, n_obs, obs_chunk):
                obs = slice(o, min(o + obs_chunk, n_obs))
                block = (F[obs, :, None] * F[obs, None, :]).reshape(-1, d2)
                G += V[rows, obs] @ block
        np.matmul(V[rows] * R[rows], F, out=b)
        A = G.reshape(m, d, d) + ridge
        try:
            Z[rows] = np.linalg.solve(A, b[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                "A factor update hit a singular linear system: some rows or "
                "classifiers have too little confidence to determine their latent "
                "factors. Increase lambda_reg (it must be > 0 to guarantee a unique "
                "solution) or lower latent_dim."
            ) from exc
    return Z


def fold_in(R, C, classifier_factors, lambda_reg, confidence_scale):
    """Instance factors of rows ``R`` with the classifier factors held fixed.

    The ALS instance step with label-free confidence: the same map gives the
    aggregator's training features and the features of any new row, which is
    what keeps the estimator inductive.

    Parameters
    ----------
    R, C : ndarray of shape (n_samples, n_columns)
        Probabilities and their label-free confidence.
    classifier_factors : ndarray of shape (n_columns, d)
    lambda_reg : float
    confidence_scale : float
        Weighted mean confidence of the training rows, which normalizes ``C``
        exactly as in the training objective.

    Returns
    -------
    Y : ndarray of shape (n_samples, d)
    """
    V = C / (R.shape[1] * confidence_scale)
    return ridge_solve(R, V, classifier_factors, lambda_reg)
