"""The supervised aggregator: from reconstructed probabilities to the answer.

'weighted' is a linear model of the reconstructed probability matrix with a
sigmoid (binary) or softmax (K classes) link, trained to convergence on the
exact gradient of the weighted focal loss. With ``gamma = 0`` (cross-entropy)
that is L2-penalized logistic regression, which scikit-learn's
``LogisticRegression(solver='newton-cholesky')`` solves; the focal loss is not
in scikit-learn, so ``gamma > 0`` has its own damped Newton, or preconditioned
L-BFGS for large aggregators (see :func:`fit_weighted` for which solver runs
when). 'mean' averages the reconstructed probabilities of the estimators and
learns nothing.
"""

import warnings

import numpy as np
from scipy.linalg import (
    LinAlgError,
    LinAlgWarning,
    cho_factor,
    cho_solve,
    cholesky,
    solve_triangular,
)
from scipy.optimize import minimize
from scipy.special import expit, logit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ._losses import _focal_terms
from ._threads import (
    BLOCK_ENTRIES,
    blas_threads,
    map_row_blocks,
    one_blas_thread,
    reduction_rows,
    row_slices,
)

AGGREGATORS = ("weighted", "mean")
AGGREGATOR_INPUTS = ("logit", "proba")

# Logits of reconstructed probabilities are clipped at logit(1e-3) ~ -6.9: a
# base estimator's hard 0 or 1 (trees, forests) would otherwise be an
# unbounded outlier that dominates the aggregator's weights.
LOGIT_CLIP = 1e-3

# Up to this many aggregator parameters, damped Newton (a dense Hessian of
# this size) is cheaper and far more precise than L-BFGS.
_NEWTON_MAX_PARAMETERS = 1500

# A full (undamped) Newton step this small, relative to the weights, ends the
# Newton iterations: the quadratic convergence has taken the error far below.
_NEWTON_STEP_TOL = 1e-7

# Stopping tolerance of LogisticRegression for gamma = 0: the largest gradient
# component of fit_weighted's objective (LogisticRegression's objective divided
# by C times the total sample weight, so the same scale) and half the squared
# Newton decrement. Newton converges quadratically, so the weights end close to
# full float64 precision, as the damped Newton below gives them.
_LOGISTIC_TOL = 1e-10
_LOGISTIC_MAX_ITER = 100

# Averaged probabilities of exactly 0 or 1 would give infinite logits.
_EPS = 1e-12


def n_outputs(n_classes):
    """Logits the aggregator produces: one for binary problems, else K."""
    return 1 if n_classes == 2 else n_classes


def features(R_hat, aggregator_input):
    """What the 'weighted' aggregator sees: the reconstruction or its clipped logit."""
    if aggregator_input == "proba":
        return R_hat
    return logit(np.clip(R_hat, LOGIT_CLIP, 1.0 - LOGIT_CLIP))


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


def aggregate(R_hat, aggregator, coef, intercept, n_classes, aggregator_input="proba"):
    """Aggregator logits of reconstructed probabilities, for either aggregator.

    'mean' returns the logits (binary) or log-probabilities of the averaged
    probabilities, so both aggregators go through :func:`raw_to_proba`.
    """
    if aggregator == "weighted":
        return raw_scores(features(R_hat, aggregator_input), coef, intercept)
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


def supervised_loss(raw, y, sample_weight, gamma, width=None):
    """Weighted mean focal loss of aggregator logits ``raw``.

    ``raw`` is the logits, or a function that gives the logits of a slice
    of rows (from the rows' features, say), so that neither the logits nor
    the loss's temporaries of all rows exist at once. The loss is summed
    over blocks of rows (:func:`~skcfe._threads.reduction_rows` of
    ``width`` entries a row, by default the logits' width).
    """
    logits = raw if callable(raw) else raw.__getitem__
    if width is None:
        width = 1 if callable(raw) or raw.ndim == 1 else raw.shape[1]
    total = None
    for rows in row_slices(len(y), reduction_rows(width)):
        loss, _ = _focal_terms(y[rows], logits(rows), gamma)
        part = np.dot(sample_weight[rows], loss)
        total = part if total is None else total + part
    return float(total / sample_weight.sum())


def fit_weighted(
    F, y, sample_weight, coef, intercept, *, gamma, alpha, max_iter=1000, newton_steps=None,
    warm_start=False,
):
    """Train the 'weighted' aggregator to convergence, warm-started.

    Minimizes ``sum_i s_i FL_gamma(p_i, y_i) / sum_i s_i + alpha / 2 |coef|^2``
    (the intercept is not penalized) with the exact gradient.

    With ``gamma = 0`` this is L2-penalized logistic regression and
    :class:`~sklearn.linear_model.LogisticRegression` solves it (see
    :func:`_fit_logistic` for the mapping of ``alpha`` onto ``C``). Its own
    solvers remain for what scikit-learn does not do:

    * ``gamma > 0``: the focal loss is not in scikit-learn. Up to 1500 weights
      (``n_outputs * (n_columns + 1)``, ``_NEWTON_MAX_PARAMETERS``) damped
      Newton solves them to full float64 precision; when it meets
      non-convexity (a focal loss far from the optimum) or has not converged
      after 50 steps, preconditioned L-BFGS takes over and up to 10 Newton
      steps finish from its solution. This is also where the warm start and
      the prior-initialized intercept matter: the focal loss is not convex.
    * above 1500 weights, for any ``gamma``: preconditioned L-BFGS alone. It
      stops at a largest projected gradient component of 1e-8 (in whitened
      coordinates), a relative decrease of 1e-12 or ``max_iter`` iterations.
      For ``gamma = 0``, LogisticRegression's lbfgs (not preconditioned) took
      6.4 s and its newton-cholesky 24 s where this takes 0.9 s (20,000 rows,
      200 columns of rank 8, 10 classes, 2010 weights; one BLAS thread).
    * ``newton_steps`` (ALS between sweeps): a cheap update that only tracks
      a moving optimum from the previous weights; it stops after that many
      descent steps, converged or not, and falls back to L-BFGS only if
      Newton fails. LogisticRegression starts only from zero or from its
      own previous fit (``warm_start``), never from given weights.
      ``None`` (the default) solves to full precision (to L-BFGS's tolerances
      above 1500 weights, where ``newton_steps`` has no effect).
    * ``warm_start=True`` (the backends' last solve, ALS after its sweeps and
      torch after its epochs, from the weights trained so far): the damped
      Newton from ``(coef, intercept)`` for ``gamma = 0`` too. Near the
      optimum it needs a step or none, where LogisticRegression starts again
      from zero: on digits (1257 rows, 50 columns, 10 classes) ALS's last
      solve took 0.7 ms against LogisticRegression's 122 ms.
    * ``gamma = 0`` where LogisticRegression cannot or does not converge: a
      class without labeled rows (it would fit fewer classes), or a
      ConvergenceWarning or LinAlgWarning (e.g. ``alpha = 0`` with collinear
      columns). The damped Newton then solves from the given start, as for
      ``gamma > 0``, and no warning escapes (backends never warn).

    For ``gamma = 0`` the problem is convex and solved to convergence, so its
    solution does not depend on the start: LogisticRegression starts from
    zero, not from ``intercept`` (the log prior), and agrees with the damped
    Newton from the prior to about 1e-15 on 20,000 rows with 0.1% positives
    weighted 500:1 (and to ~1e-12 on the benchmarks below).

    Timing of ``gamma = 0`` from a cold start, LogisticRegression against the
    damped Newton from the prior (the second of two calls, one BLAS thread):
    100,000 rows x 5 columns, binary: 0.048 s against 0.066 s; 20,000 rows x
    50 columns, 5 classes (255 weights): 0.45 s against 0.56 s.

    Returns
    -------
    coef : ndarray of shape (n_outputs, n_columns)
    intercept : ndarray of shape (n_outputs,)
    """
    k, q = coef.shape
    theta = None
    if gamma == 0 and newton_steps is None and not warm_start and k * (q + 1) <= _NEWTON_MAX_PARAMETERS:
        theta = _fit_logistic(F, y, sample_weight, k, alpha)
    if theta is None:
        theta = _fit_own(F, y, sample_weight, coef, intercept, gamma, alpha, max_iter, newton_steps)
    if k > 1:
        # Softmax logits are invariant to adding one vector to every class;
        # the penalty's minimum along that direction is the centred solution.
        theta = theta - theta.mean(axis=0)
    if not np.all(np.isfinite(theta)):
        raise ValueError(
            "The aggregator's weights became non-finite. The reconstructed "
            "probabilities are degenerate; increase aggregator_alpha or lambda_reg."
        )
    return theta[:, :q], theta[:, q]


def _fit_logistic(F, y, sample_weight, k, alpha):
    """``gamma = 0`` by LogisticRegression: ``theta = [coef, intercept]``, or None.

    LogisticRegression minimizes ``1/2 |coef|^2 + C sum_i s_i loss_i``;
    divided by ``C sum_i s_i`` that is ``fit_weighted``'s objective with
    ``alpha = 1 / (C sum_i s_i)``, so ``C = 1 / (alpha sum_i s_i)`` (and
    ``C = inf``, no penalty, for ``alpha = 0``). Neither penalizes the
    intercept. None when it cannot do the job: a class has no row (it would
    fit fewer classes), or it warns that it did not converge or met a singular
    Hessian (the warning is caught; the caller solves by its own Newton).
    """
    n_classes = 2 if k == 1 else k
    if np.unique(y).size < n_classes:
        return None
    C = np.inf if alpha == 0 else 1.0 / (alpha * sample_weight.sum())
    model = LogisticRegression(
        C=C, solver="newton-cholesky", tol=_LOGISTIC_TOL, max_iter=_LOGISTIC_MAX_ITER
    )
    # Raised, not shown: the own Newton takes over. (catch_warnings is
    # process-wide state, as in scikit-learn's own Newton solver.)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", LinAlgWarning)
        try:
            model.fit(F, y, sample_weight=sample_weight)
        except (ConvergenceWarning, LinAlgWarning):
            return None
    return np.hstack([model.coef_, model.intercept_[:, None]])


class _Design:
    """The aggregator's rows by blocks: ``(F1, y, weights)`` of each block in turn.

    ``F1 = [F, 1]`` (the features and the intercept's column of ones) is
    never formed for all rows: each block appends the ones to its rows of
    ``F``, and ``weights`` are the block's sample weights normalized by the
    total. The loss, gradient and Hessian are sums over the blocks, added in
    block order. A block holds :func:`~skcfe._threads.reduction_rows` rows
    of the widest per-row term (``p = q + 1`` features or a ``k x k`` row
    Hessian), a multiple of ``hessian_rows``, the rows of the Hessian's
    finer blocks (:func:`_hessian`), so that these fall at the same rows
    however the rows are streamed. Data of one block (up to 16,384 rows,
    or up to 95,000 at 10 columns) give exactly the sums of the whole.
    """

    def __init__(self, F, y, sample_weight, k):
        n, q = F.shape
        p = q + 1
        self.F, self.y, self.sample_weight = F, y, sample_weight
        self.total = sample_weight.sum()
        self.hessian_rows = max(1, BLOCK_ENTRIES // max(p, k * k))
        self.blocks = row_slices(n, reduction_rows(max(p, k * k), self.hessian_rows))

    def __len__(self):
        return len(self.y)

    def __iter__(self):
        for rows in self.blocks:
            F = self.F[rows]
            yield (np.hstack([F, np.ones((len(F), 1))]), self.y[rows],
                   self.sample_weight[rows] / self.total)


def _add(total, part):
    """``total + part``, or ``part`` itself for the first block (``total`` None)."""
    return part if total is None else total + part


def _fit_own(F, y, sample_weight, coef, intercept, gamma, alpha, max_iter, newton_steps):
    """Damped Newton and/or preconditioned L-BFGS from ``(coef, intercept)``.

    Any ``gamma``; see :func:`fit_weighted` for which runs when. Returns
    ``theta = [coef, intercept]``, not yet centred. The rows stream by
    blocks (:class:`_Design`): no copy of ``F`` and no temporary of every
    row is made.
    """
    k, q = coef.shape
    design = _Design(F, y, sample_weight, k)
    theta0 = np.hstack([coef, intercept[:, None]])
    if k * (q + 1) > _NEWTON_MAX_PARAMETERS:
        return _lbfgs(design, theta0, gamma, alpha, max_iter)
    steps = 50 if newton_steps is None else newton_steps
    theta, status = _newton(design, theta0, gamma, alpha, max_steps=steps)
    if status == "failed" or (status == "max_steps" and newton_steps is None):
        theta = _lbfgs(design, theta, gamma, alpha, max_iter)
        theta, _ = _newton(design, theta, gamma, alpha, max_steps=10)
    return theta


def _lbfgs(design, theta0, gamma, alpha, max_iter):
    """L-BFGS on the exact gradient, in coordinates whitened by the features.

    ``theta = u @ L^-1`` with ``L L^T`` the weighted Gram matrix of the
    features (plus the penalty): in ``u`` the Hessian is close to the
    identity, where the raw coordinates are strongly collinear (the
    reconstructed columns have rank at most ``latent_dim``). The Gram
    matrix, the loss and its gradient are sums over the rows' blocks
    (:class:`_Design`).
    """
    k, p = theta0.shape
    q = p - 1
    gram = None
    for F1, _, weights in design:
        gram = _add(gram, F1.T @ (F1 * weights[:, None]))
    gram[np.arange(q), np.arange(q)] += alpha
    # A tiny ridge relative to the scale keeps the Cholesky factor defined when
    # alpha is 0 and columns are exactly collinear.
    gram[np.diag_indices(p)] += 1e-10 * np.trace(gram) / p
    to_theta = solve_triangular(cholesky(gram, lower=True), np.eye(p), lower=True)

    def objective(u):
        theta = u.reshape(k, p) @ to_theta
        W = theta[:, :q]
        value, grad_theta = None, None
        for F1, y, weights in design:
            raw = F1 @ theta.T
            loss, grad = _focal_terms(y, raw[:, 0] if k == 1 else raw, gamma)
            g = grad.reshape(len(y), k) * weights[:, None]
            value = _add(value, np.dot(weights, loss))
            grad_theta = _add(grad_theta, g.T @ F1)
        value = value + 0.5 * alpha * np.sum(W * W)
        grad_theta[:, :q] += alpha * W
        return value, (grad_theta @ to_theta.T).ravel()

    u0 = np.linalg.solve(to_theta.T, theta0.T).T
    solution = minimize(
        objective,
        u0.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-8, "ftol": 1e-12},
    )
    return solution.x.reshape(k, p) @ to_theta


def _newton(design, theta, gamma, alpha, max_steps):
    """Damped Newton on the exact gradient; returns ``(theta, status)``.

    ``status`` is 'converged', 'max_steps' (still descending) or 'failed'
    (no descent direction, or no decrease along it).

    Directions that only the penalty pins down (separable rows, the softmax
    shift) have curvature ``alpha``: first-order methods crawl there and stop
    with the weights uncertain at about ``sqrt(eps / alpha)``, where Newton
    converges quadratically to full float64 precision. The per-row Hessian in
    the logits is exact for the cross-entropy; for the focal loss it comes from
    central differences of its exact gradient (accurate to ~1e-8, which is
    enough: Newton's fixed point is set by the exact gradient). Steps are
    halved until the objective does not rise; a direction that is not a
    descent direction (the focal loss is not convex for gamma > 0 far from
    the optimum) ends the run as failed.
    """
    # The loss, gradient and Hessian are sums over the rows' blocks
    # (_Design); each block's Hessian by finer row blocks in threads, and
    # every product and factorization here with one BLAS thread (see _threads.py).
    n_threads = blas_threads()  # read before the limit below
    with one_blas_thread():
        return _newton_steps(design, theta, gamma, alpha, max_steps, n_threads)


def _hessian(F1, hess, rows_per_block, n_threads, start=0):
    """``start + H``, ``H[(a, u), (b, v)] = sum_i hess_i[a, b] F1_iu F1_iv``, by row blocks.

    The blocks' shares are added to ``start`` one at a time in block order,
    so that the Hessian of rows streamed in consecutive chunks (each a
    multiple of ``rows_per_block`` rows) is the sum the whole would give.
    """
    k, p = hess.shape[1], F1.shape[1]

    def block(rows):
        F, H = F1[rows], np.empty((k, p, k, p))
        for a in range(k):
            for b in range(a, k):
                H[a, :, b, :] = F.T @ (F * hess[rows, a, b, None])
                H[b, :, a, :] = H[a, :, b, :].T
        return H.reshape(k * p, k * p)

    total = start
    for part in map_row_blocks(block, len(F1), rows_per_block, n_threads):
        total = total + part
    return total


def _newton_steps(design, theta, gamma, alpha, max_steps, n_threads):
    """The steps of :func:`_newton`, each a pass over the rows' blocks."""
    k, p = theta.shape
    q = p - 1
    penalty = np.full((k, p), alpha)
    penalty[:, q] = 0.0
    h = 1e-5

    def logits(F1, t):
        raw = F1 @ t.T
        return raw[:, 0] if k == 1 else raw

    def value(t):
        total = None
        for F1, y, weights in design:
            loss, _ = _focal_terms(y, logits(F1, t), gamma)
            total = _add(total, np.dot(weights, loss))
        return total + 0.5 * np.sum(penalty * t * t)

    current = value(theta)
    for _ in range(max_steps):
        # The gradient and the Hessian in one pass (the Hessian is wasted
        # only on the last step, when the gradient is already zero).
        gradient, H = None, 0
        for F1, y, weights in design:
            raw = logits(F1, theta)
            grad = _focal_terms(y, raw, gamma)[1].reshape(len(y), k)
            gradient = _add(gradient, (grad * weights[:, None]).T @ F1)
            hess = _row_hessians(y, raw, grad, gamma, k, h) * weights[:, None, None]
            H = _hessian(F1, hess, design.hessian_rows, n_threads, H)
        gradient = gradient + penalty * theta
        if np.max(np.abs(gradient)) <= 1e-12:
            return theta, "converged"
        H[np.diag_indices(k * p)] += penalty.ravel()
        delta = _newton_direction(H, gradient, q)
        if np.sum(delta * gradient) <= 0:
            return theta, "failed"
        full_step = np.max(np.abs(delta))
        for halvings in range(40):
            candidate = theta - delta
            new = value(candidate)
            if new <= current + 1e-15 * abs(current):
                break
            delta = 0.5 * delta
        else:
            return theta, "failed"
        theta, current = candidate, new
        # Near the optimum Newton's error after a full step is about the square
        # of the step (times a curvature ratio): a full step of 1e-7 leaves the
        # weights exact to ~1e-14, and one more step would only add rounding.
        if halvings == 0 and full_step <= _NEWTON_STEP_TOL * (1.0 + np.max(np.abs(theta))):
            return theta, "converged"
    return theta, "max_steps"


def _row_hessians(y, raw, grad, gamma, k, h):
    """(n, k, k) Hessians of each row's loss in its own logits.

    Cross-entropy (``gamma = 0``) in closed form: ``p (1 - p)`` for one binary
    logit, ``diag(p) - p p^T`` for softmax logits, where ``grad = p - onehot(y)``.
    The focal loss by symmetrized central differences of its exact gradient
    (``grad`` at ``raw``).
    """
    if gamma == 0:
        if k == 1:
            u = np.abs(grad)  # grad = p - y, so |grad| is 1 - p_t
            return (u * (1.0 - u))[:, :, None]
        p = grad.copy()
        p[np.arange(len(y)), y] += 1.0
        hess = -p[:, :, None] * p[:, None, :]
        hess[:, np.arange(k), np.arange(k)] += p
        return hess
    hess = np.empty((len(y), k, k))
    for j in range(k):
        step = h if k == 1 else h * (np.arange(k) == j)
        g_up = _focal_terms(y, raw + step, gamma)[1].reshape(len(y), k)
        g_down = _focal_terms(y, raw - step, gamma)[1].reshape(len(y), k)
        hess[:, :, j] = (g_up - g_down) / (2 * h)
    return 0.5 * (hess + hess.transpose(0, 2, 1))


def _newton_direction(H, gradient, q):
    """Solve ``H delta = gradient`` for the Newton step, by Cholesky when it can.

    With K > 1 the softmax shift of the intercepts is exactly flat, so ``H``
    is singular along it, and the gradient has no component there. Adding
    curvature along that direction alone makes ``H`` positive definite for
    the convex (gamma = 0) loss without changing the step in any other
    direction. When that is not enough (the focal loss is not convex far from
    the optimum), a least-squares solve takes over.
    """
    k, p = gradient.shape
    if k > 1:
        intercepts = np.arange(k) * p + q
        H[np.ix_(intercepts, intercepts)] += np.mean(np.diag(H))
    try:
        factor = cho_factor(H, lower=True, check_finite=False)
    except LinAlgError:
        return np.linalg.lstsq(H, gradient.ravel(), rcond=1e-12)[0].reshape(k, p)
    return cho_solve(factor, gradient.ravel(), check_finite=False).reshape(k, p)
