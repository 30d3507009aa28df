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

Memory and threads
------------------
A fit streams over blocks of rows (:func:`map_row_blocks`). A sweep solves a
block's instance factors, adds the block's share to the classifier step's
normal equations and to the QR that balancing needs, and drops them; the
surrogate weights (:class:`SurrogateWeights`), the rows' shares
(:class:`RowShare`) and the confidence itself are computed per block: the
problem's ``C`` and ``C_free`` are a :class:`~skcfe._confidence.RowConfidence`
that computes a block's confidence from R (and the labels, for
'label_aware'; the observed mask, for missing entries) when it is indexed,
and the confidence totals are sums over blocks. Only a confidence callable's
result, computed once on all of R, is an array the fit holds. The sums over
all rows outside the sweep go by larger blocks
(:func:`~skcfe._threads.reduction_rows`): the initial factors' Gram matrix,
and the aggregator's loss, gradient and Hessian (:func:`fit_weighted` appends
the intercept's column of ones per block, with no copy of its input).

So beyond R, a fit holds one array as large as R, the labeled rows'
aggregator input ``Z`` (n_labeled x q, overwritten by every sweep), a few
vectors of length n (labels, the label targets' column, the sample weights
and the supervised weights: 0.1x R each at q = 10) and blocks of a few MiB
each. Binary, q = 10, the fit's peak resident memory is 2.6x R at n = 1e7
and 3.2x R at n = 1e6, where fixed costs count more (R included; it was
6.5x when C, C_free, a copy of Z and the aggregator's temporaries of all
rows were whole arrays; benchmarks/bench_scale.py measures it). A
matrix with missing entries adds its observed mask (1/8 of R) and the copy
of R with the missing entries filled. The blocks run in as many threads as
BLAS may use, each with single-threaded BLAS (numpy releases the GIL in the
products and batched solves that fill a block), and are reduced in block
order.
"""

import numpy as np

from .._aggregator import (
    aggregate,
    features,
    fit_weighted,
    n_outputs,
    prior_intercept,
    raw_scores,
    supervised_loss,
)
from .._confidence import agreement_with_labels
from .._objective import combine
from .._threads import (
    BLOCK_ENTRIES,
    blas_threads,
    iter_row_blocks,
    map_row_blocks,
    reduction_rows,
    row_slices,
)
from ._result import BackendResult, fold_in, ridge_solve

# Row blocks of a sweep whose shares of the classifier step are summed at once.
_SWEEP_GROUP = 16

# Newton steps the aggregator takes per sweep while the factors still move.
_TRACKING_NEWTON_STEPS = 2


def initial_factors(R, row_weight, latent_dim, rng):
    """Classifier factors from the top eigenvectors of the weighted Gram matrix.

    Deterministic and invariant to repeating rows versus weighting them. When
    latent_dim exceeds the number of columns, the extra dimensions start as
    small noise drawn from ``rng``.
    """
    q = R.shape[1]
    # The weighted Gram matrix by blocks of rows (no weighted copy of R).
    total, gram = row_weight.sum(), None
    for rows in row_slices(len(R), reduction_rows(q)):
        part = R[rows].T @ (R[rows] * (row_weight[rows] / total)[:, None])
        gram = part if gram is None else gram + part
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


def block_rows(q, d):
    """Rows per block: a block's widest temporary (``d * d`` or ``q`` entries a row)
    holds ``BLOCK_ENTRIES`` entries (:func:`~skcfe.backends.ridge_solve` then
    solves the block in one chunk)."""
    return max(1, BLOCK_ENTRIES // max(d * d, q))


class RowShare:
    """The rows' shares ``w~ = w / sum(w)``, computed by rows: ``share[rows]``.

    Exactly the entries of ``w / w.sum()``, without a vector of length n.
    """

    def __init__(self, row_weight):
        self.row_weight, self.total = row_weight, row_weight.sum()

    def __len__(self):
        return len(self.row_weight)

    def __getitem__(self, rows):
        return self.row_weight[rows] / self.total


class SurrogateWeights:
    """Per-entry weights ``V`` of the ALS surrogate for the instance step, by rows.

    ``weights[rows]`` computes the rows' weights from R, C and T on demand,
    so a fit never holds the (n, q) matrix (nor a vector of length n: the
    rows' shares and label weights are computed by rows too). ``V`` is
    normalized per row (a row's weight cancels in its own ridge problem);
    ``row_share`` (``w~_i``, a :class:`RowShare`) weighs rows against each
    other in the classifier step.
    """

    def __init__(self, problem, rho):
        w = problem.row_weight
        q = problem.R.shape[1]
        self.problem = problem
        self.row_share = RowShare(w)
        self._confidence_weight = rho / (q * problem.confidence_scale)
        self._label_scale = None
        if rho < 1.0 and problem.labeled.any():
            row_share = self.row_share[:]
            class_weight = self._class_weight(slice(None))
            labeled_share = row_share[problem.labeled].sum()
            mean_class_weight = np.dot(row_share, class_weight) / labeled_share
            self._label_scale = (1.0 - rho) / (q * mean_class_weight)

    def _class_weight(self, rows):
        """``k_i`` of labeled rows (sample weight over row weight), zero elsewhere."""
        problem = self.problem
        w = problem.row_weight[rows]
        return np.divide(problem.sample_weight[rows], w, out=np.zeros_like(w),
                         where=(w > 0) & problem.labeled[rows])

    def __getitem__(self, rows):
        problem = self.problem
        C = problem.C[rows]
        V = self._confidence_weight * C
        if self._label_scale is not None:
            # Entries without confidence (missing predictions) get no label weight either.
            agree = agreement_with_labels(problem.R[rows], problem.T[rows]) * (C > 0)
            V += (self._label_scale * self._class_weight(rows))[:, None] * agree
        return V


def factor_weights(problem, rho):
    """The whole matrix of :class:`SurrogateWeights` and the rows' shares ``w~``."""
    weights = SurrogateWeights(problem, rho)
    return weights[:], weights.row_share[:]


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
    return _balanced(np.linalg.qr(Y * np.sqrt(row_share)[:, None], mode="r"), X)


def _balanced(R_Y, X):
    """:func:`balance` given ``R_Y``, the R factor of ``diag(w~)^1/2 Y``."""
    q, d = X.shape
    _, S, Vt = np.linalg.svd(R_Y @ X.T / np.sqrt(q), full_matrices=False)
    # Each singular vector's sign, fixed by its largest entry, so that equal
    # products give equal factors (weighting rows or repeating them).
    signs = np.sign(Vt[np.arange(len(S)), np.argmax(np.abs(Vt), axis=1)])
    balanced = np.zeros((q, d))
    rank = min(len(S), d)
    balanced[:, :rank] = (Vt[:rank] * np.where(signs[:rank] == 0, 1.0, signs[:rank])[:, None]).T
    balanced[:, :rank] *= np.sqrt(q * S[:rank])
    return balanced


def balanced_sweep(R, V, row_share, X, lambda_reg, *, rows_per_block=None, n_threads=1):
    """One sweep as :func:`fit` runs it: :func:`factor_sweep`, then :func:`balance`.

    Streamed over blocks of rows (:func:`map_row_blocks`): each block's
    instance factors are solved, added into the classifier step's normal
    equations and reduced to the R factor of the block's rows of
    ``diag(w~)^1/2 Y``, then dropped. The blocks' R factors, stacked, have
    the R factor of the whole (a tall-skinny QR), which is all balancing
    needs. ``V`` is the weight matrix or a :class:`SurrogateWeights`
    (anything that rows index), so neither ``V`` nor ``Y`` need ever exist
    for all rows. Equal to ``balance(*factor_sweep(...))`` up to rounding.
    """
    q, d = X.shape
    rows_per_block = rows_per_block or block_rows(q, d)

    def sweep_block(rows):
        V_b, R_b = V[rows], R[rows]
        Y = ridge_solve(R_b, V_b, X, lambda_reg)
        # This block's share of the classifier step's normal equations, as
        # ridge_solve(R.T, V.T, Y, obs_weight=q * row_share) forms them.
        Y_w = Y * (q * row_share[rows])[:, None]
        gram = V_b.T @ (Y_w[:, :, None] * Y[:, None, :]).reshape(-1, d * d)
        rhs = (V_b * R_b).T @ Y_w
        return gram, rhs, np.linalg.qr(Y * np.sqrt(row_share[rows])[:, None], mode="r")

    # A block's share of the normal equations has q d^2 entries, so the
    # blocks' shares are summed a group of blocks at a time (in block order,
    # as one sum over every block would): holding every block's share until
    # the end took n q d^4 / BLOCK_ENTRIES entries, 50x R at K = 5, d = 50.
    gram, rhs, r_factors = 0, 0, []
    for part in iter_row_blocks(sweep_block, len(R), rows_per_block, n_threads,
                                group=_SWEEP_GROUP):
        gram = gram + part[0]
        rhs = rhs + part[1]
        r_factors.append(part[2])
    gram[:, :: d + 1] += lambda_reg
    try:
        X = np.linalg.solve(gram.reshape(q, d, d), rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "The classifier step hit a singular linear system: some classifiers have "
            "too little confidence to determine their latent factors. Increase "
            "lambda_reg (it must be > 0 to guarantee a unique solution) or lower latent_dim."
        ) from exc
    R_Y = r_factors[0] if len(r_factors) == 1 else np.linalg.qr(np.vstack(r_factors), mode="r")
    return _balanced(R_Y, X)


def factor_objective(R, V, row_share, X, Y, lambda_reg):
    """``L_fac``, the surrogate that :func:`factor_sweep` never increases."""
    residual = R - Y @ X.T
    data = np.dot(row_share, np.sum(V * residual**2, axis=1))
    ridge = np.dot(row_share, np.sum(Y * Y, axis=1)) + np.sum(X * X) / X.shape[0]
    return float(data + lambda_reg * ridge)


def fit(problem, settings, rng):
    """Fit the factors and the aggregator by ALS; see the module docstring."""
    R, C, labeled, w = problem.R, problem.C, problem.labeled, problem.row_weight
    # Every row labeled (the usual case): views, not copies of length n.
    everyone = labeled.all()
    y, s = (problem.y, problem.sample_weight) if everyone else (
        problem.y[labeled], problem.sample_weight[labeled])
    lam = settings.lambda_reg
    n, q = R.shape
    weights = SurrogateWeights(problem, settings.rho)
    X = initial_factors(R, w, settings.latent_dim, rng)
    rows_per_block = block_rows(q, settings.latent_dim)
    n_threads = blas_threads()

    k = n_outputs(problem.n_classes)
    coef = np.zeros((k, q))
    if settings.aggregator == "mean":
        coef[:] = 1.0 / (q // (1 if k == 1 else k))
    intercept = prior_intercept(y, s, problem.n_classes) if settings.aggregator == "weighted" else np.zeros(k)

    history = {"objective": [], "reconstruction": [], "supervised": []}

    weighted = settings.aggregator == "weighted"
    confidence_scale = problem.confidence_scale
    total_confidence = problem.total_confidence
    # The labeled rows' aggregator input: the features of their fold-in
    # reconstruction ('weighted'), or the reconstruction itself ('mean').
    # The one full-size array a fit adds; every sweep overwrites it.
    Z = np.empty((len(y), q))
    position = None if everyone else np.cumsum(labeled) - 1

    def represent(X):
        """Fill ``Z`` for ``X``; return the reconstruction term of the objective.

        By row blocks, the same sums as :func:`~skcfe._objective.reconstruction_loss`.
        """
        def represent_block(rows):
            C_rows = C[rows]
            C_free = C_rows if problem.C_free is C else problem.C_free[rows]
            Y = fold_in(R[rows], C_free, X, lam, confidence_scale)
            R_hat = Y @ X.T
            keep = slice(None) if everyone else labeled[rows]
            into = rows if everyone else position[rows][keep]
            Z[into] = features(R_hat[keep], settings.aggregator_input) if weighted else R_hat[keep]
            residual = R[rows] - R_hat
            return (np.dot(w[rows], np.sum(C_rows * residual**2, axis=1)),
                    np.dot(w[rows], np.sum(Y * Y, axis=1)))

        parts = map_row_blocks(represent_block, n, rows_per_block, n_threads)
        data = sum(part[0] for part in parts)
        ridge = np.sum(X * X) / q + sum(part[1] for part in parts) / w.sum()
        return float(data / total_confidence + lam * ridge)

    def train(coef, intercept, newton_steps):
        """The aggregator updated on ``Z`` from its last weights, and its supervised term."""
        if weighted:
            coef, intercept = fit_weighted(
                Z, y, s, coef, intercept, gamma=settings.focal_gamma,
                alpha=settings.aggregator_alpha, newton_steps=newton_steps, warm_start=True,
            )

        def raw(rows):  # the logits of a block of rows of Z
            if weighted:
                return raw_scores(Z[rows], coef, intercept)
            return aggregate(Z[rows], settings.aggregator, coef, intercept, problem.n_classes)

        return coef, intercept, supervised_loss(raw, y, s, settings.focal_gamma, width=q)

    converged = False
    n_iter = 0
    for n_iter in range(1, settings.max_iter + 1):
        X = balanced_sweep(R, weights, weights.row_share, X, lam,
                           rows_per_block=rows_per_block, n_threads=n_threads)
        reconstruction = represent(X)
        # The factors do not depend on the aggregator, which only has to track
        # its moving optimum here (a few Newton steps from the last sweep's
        # weights); it is solved to full precision once the factors settle.
        coef, intercept, supervised = train(coef, intercept, _TRACKING_NEWTON_STEPS)
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
        coef, intercept, supervised = train(coef, intercept, None)
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

