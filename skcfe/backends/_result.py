"""What every backend returns, and the numpy maps shared by fit and predict."""

from dataclasses import dataclass, field

import numpy as np

# Largest number of float64 entries a solver workspace holds at once (8 MiB):
# large enough for BLAS-3 efficiency, small enough to stay in cache-friendly
# sizes for the batched solve (bench_speed: 20% faster than 32 MiB at d = 20)
# and for a laptop with n = 1e6.
_WORKSPACE_ENTRIES = 1 << 20


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
        Whether the backend's stopping test passed: ALS, the relative change
        of the objective fell below ``tol``; torch, the objective is at a
        stationary point (``|grad|^2 <= tol |objective|``).
    history : dict of str to list of float
        Per iteration: ``objective``, ``reconstruction`` and ``supervised``.
    stop_reason : str
        Why the fit stopped: 'converged', 'max_iter', 'line_search' (torch:
        L-BFGS's line search found no decrease away from a stationary point)
        or 'stalled' (torch: the objective's relative change per epoch fell
        below ``tol`` away from a stationary point); '' when the backend does
        not say (the estimator then reads ``converged`` alone).
    """

    classifier_factors: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    history: dict = field(default_factory=dict)
    stop_reason: str = ""


def ridge_solve(R, V, F, reg, obs_weight=None):
    """Solve one weighted ridge regression per row of ``R``, all rows batched.

    Row ``a`` gets ``z_a = (F^T diag(w V_a) F + reg I)^-1 F^T (w V_a R_a)``,
    with ``w`` the per-observation ``obs_weight`` (ones by default). The Gram
    matrices come from matrix products ``V @ (F outer F)``, so the cost is
    BLAS-3 bound. Rows go in chunks whose Gram matrices fit a fixed workspace,
    and within a chunk observations go in chunks whose outer products and
    ``V * R`` products fit it too; with a single row chunk (few rows, as in
    the classifier step) every observation's outer product is built once.

    Parameters
    ----------
    R, V : ndarray of shape (n_rows, n_obs)
        Targets and their non-negative weights (views such as transposes are
        read in place).
    F : ndarray of shape (n_obs, d)
        Fixed factors of the other side.
    reg : float
        Ridge penalty (> 0 keeps every system positive definite).
    obs_weight : ndarray of shape (n_obs,), default=None
        A weight per observation multiplying ``V``, without forming the
        weighted matrix.

    Returns
    -------
    Z : ndarray of shape (n_rows, d)
    """
    n_rows, n_obs = R.shape
    d = F.shape[1]
    d2 = d * d
    row_chunk = max(1, min(n_rows, _WORKSPACE_ENTRIES // max(d2, n_obs)))
    if row_chunk < n_rows and n_obs * d2 > _WORKSPACE_ENTRIES:
        # Many rows and many observations: the Gram workspace alone sets the
        # row chunk, and observations are chunked below.
        row_chunk = max(1, min(n_rows, _WORKSPACE_ENTRIES // d2))
    obs_chunk = max(1, min(n_obs, _WORKSPACE_ENTRIES // max(d2, row_chunk)))
    weighted = F if obs_weight is None else F * obs_weight[:, None]

    def outer(obs):
        return (weighted[obs, :, None] * F[obs, None, :]).reshape(-1, d2)

    whole = outer(slice(0, n_obs)) if obs_chunk == n_obs else None
    Z = np.empty((n_rows, d))
    for start in range(0, n_rows, row_chunk):
        rows = slice(start, min(start + row_chunk, n_rows))
        G = np.zeros((rows.stop - rows.start, d2))
        b = np.zeros((rows.stop - rows.start, d))
        for o in range(0, n_obs, obs_chunk):
            obs = slice(o, min(o + obs_chunk, n_obs))
            Vb = V[rows, obs]
            G += Vb @ (whole if whole is not None else outer(obs))
            b += (Vb * R[rows, obs]) @ weighted[obs]
        G[:, :: d + 1] += reg  # the ridge on every diagonal, in place
        try:
            Z[rows] = np.linalg.solve(G.reshape(-1, d, d), b[:, :, None])[:, :, 0]
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
    what keeps the estimator inductive. Each row solves

        y_i = (X^T diag(v_i) X + lambda_reg I)^-1 X^T (v_i * r_i),
        v_i = c_i / (q * confidence_scale),

    with ``q`` the number of columns. In the units of the confidence ``C``
    the ridge is therefore ``lambda_reg * q * confidence_scale``: it is
    scaled by q times the mean confidence, so ``lambda_reg`` is relative to
    a row's data term (whose weights ``v_i`` sum to about 1), not an
    absolute penalty.

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
