"""PyTorch backend: the exact CF-Ensemble objective, minimized with autograd.

The instance factors are not free parameters. Every row's factors are the
fold-in of its probabilities given the classifier factors ``X``,

    y_i(X) = (X^T diag(v_i) X + lambda_reg I)^-1 X^T (v_i * r_i),
    v_i = c_free_i / (q * confidence_scale),

a batched, differentiable linear solve: the same map that
:func:`skcfe.backends.fold_in` computes at predict time. The objective of
:mod:`skcfe._objective` is therefore a function of ``X`` and the aggregator
alone,

    L(X, W, b) = rho * L_recon(X) + (1 - rho) * (L_sup(X, W, b) + alpha / 2 |W|^2),

(the penalty is the one :func:`skcfe._aggregator.fit_weighted` adds), and its
exact gradient, focal loss included, reaches ``X`` through the fold-in. That
is the difference from ALS, whose factor steps see the labels only through the
confidence weights. What is trained is exactly what predict computes, so the
model stays inductive.

Optimizer
---------
Full-batch L-BFGS in float64: scipy's L-BFGS-B (its More-Thuente line search
enforces the strong Wolfe conditions) driven by torch's exact objective and
gradient. The problem has few parameters (``q d + K (q + 1)``) and every
evaluation is one batched ``d x d`` solve, which is what a quasi-Newton method
is for: it needs no step size, is deterministic, and the objective decreases
at every epoch. ``torch.optim.LBFGS`` would do the same mathematics, but
creating any torch optimizer imports ``torch._dynamo`` (over 2 s, once per
process), longer than a whole fit on a small problem. One epoch is one L-BFGS
iteration (a direction and its line search), and the history records the
exact objective after each.

Stopping and convergence: the objective is smooth with
``aggregator_input='proba'``, but with 'logit' (the estimator's default) the
clipped logits ``logit(clip(r, 1e-3, 1 - 1e-3))`` put a kink wherever a
reconstruction crosses the clip. L-BFGS stalls on such kinks, with an epoch
that barely moves (the relative change falls below ``tol``) or a line search
that finds no decrease at all (scipy's "ABNORMAL" exit), at gradient norms of
0.02-0.4, far from a stationary point. So whenever L-BFGS stops before
``max_iter``, the aggregator is polished (solved by
:func:`skcfe._aggregator.fit_weighted` on the fold-in features with the
factors fixed, as ALS ends), and L-BFGS restarts with a fresh memory from
there while the point is not stationary and the last run lowered the
objective by more than ``tol`` relative. ``converged`` means stationary:
``|grad|^2 <= tol * |objective|`` at the returned parameters, over every
trained parameter (a unit step along the gradient would change the
objective by at most ``tol`` relative, to first order). A fit stuck on a
kink reports ``converged=False``, which the estimator turns into a
ConvergenceWarning.

Measured on the problems of ``benchmarks/bench_backends.py --quick`` with its
settings (the estimator's defaults, focal_gamma=2, one thread); percentages
are the trained objective above the reference, the lowest that L-BFGS reached
with tol=0 in 2000 epochs (600 for n=10k):

* binary, n=1k: 42 epochs at the default tol, 1.6% above, not stationary
  (|grad| = 0.028); tol=1e-8: 61 epochs, 1.5% above. The old stop (a
  relative change below tol taken as convergence): 41 epochs, 1.8%.
* binary, n=10k: 28 epochs, 1.0% above, converged; tol=1e-8: 241 epochs,
  0.1% above. The old stop: 5 epochs, 3.1%.
* 3 classes, n=1k (latent_dim=24): max_iter=100 reached, 51% above; tol=1e-8:
  1000 epochs, 8.4% above, and the objective was still falling after 2000.
  The old stop claimed convergence after 96 epochs, 57% above.

``Settings.torch.solver = 'adam'`` selects full-batch Adam with
``learning_rate`` instead (one step per epoch, until the relative change falls
below ``tol`` or ``max_iter``; then the same polish and the same test of
``converged``), kept for comparison; under L-BFGS ``learning_rate`` has no
effect, since the line search picks every step. On the problems above, Adam
at ``learning_rate=0.05`` for 1000 epochs ended 4.8%, 79% and 1.1% above the
reference (3.1 s, 14 s and 24 s, against 6.3 s, 66 s and 60 s for the
reference L-BFGS runs), and its relative change is a noisier stopping rule.

Start: the classifier factors of :func:`skcfe.backends.als.initial_factors`
(the same start as ALS, drawn from the same generator), and the aggregator
trained to convergence by :func:`skcfe._aggregator.fit_weighted` on the fold-in
features of that start, beginning at the log prior intercept. With
``rho = 1`` the objective does not involve the aggregator; it is then fitted
to the final features, as ALS does. The 'mean' aggregator has nothing to learn
and only ``X`` is optimized.

Determinism: float64 everywhere (CPU and CUDA, where double precision costs
little at these sizes and keeps results comparable with the CPU); no torch
random numbers are drawn (the generator ``rng`` seeds the initial factors
only) and only deterministic ops are used (no scatter or index-add in the
backward pass), so equal inputs and ``random_state`` give identical results
on the same machine and thread count. Small CPU problems run on one intra-op
thread, set for the fit and restored afterwards; no other global torch state
is touched. The fitted state comes back as numpy float64 arrays, so a model
trained on a GPU pickles and predicts without torch.
"""

import threading
from contextlib import contextmanager

import numpy as np
import torch
from scipy.optimize import minimize

from .._aggregator import (
    LOGIT_CLIP,
    features,
    fit_weighted,
    n_outputs,
    prior_intercept,
    supervised_loss,
)
from .._aggregator import aggregate as np_aggregate
from .._objective import combine, reconstruction_loss
from ._result import _WORKSPACE_ENTRIES, BackendResult, fold_in
from .als import initial_factors

# Averaged probabilities are clipped away from 0 and 1 as skcfe._aggregator does.
_EPS = 1e-12
# L-BFGS memory (curvature pairs): fewer epochs than scipy's default of 10
# (107 against 135 to tol=1e-8 on a 3-class problem), at no measurable cost.
_HISTORY_SIZE = 20
# Bound on objective evaluations per epoch (line-search trials included).
_MAX_EVALS_PER_EPOCH = 20
# Below this many multiply-adds per evaluation (the Gram matrices, n q d^2),
# CPU ops are too small to split across threads: extra threads only spin, and
# on a busy machine they slow a fit down several times.
_PARALLEL_WORK = 1 << 22


# --------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------


def resolve_device(device):
    """The ``torch.device`` for a ``device`` setting: 'cpu', 'cuda', 'cuda:N' or 'auto'."""
    name = "cpu" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'auto'."
        ) from exc
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise ValueError(
            f"device={device!r} is not supported by the torch backend; use 'cpu', 'cuda', "
            "'cuda:N' or 'auto'."
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available in this PyTorch "
            f"installation (torch {torch.__version__}). Use device='cpu' (or 'auto', which "
            "falls back to the CPU)."
        )
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} "
            "CUDA device(s). Use 'cuda:0', 'auto' or 'cpu'."
        )
    return resolved


# --------------------------------------------------------------------------
# the objective in torch
# --------------------------------------------------------------------------


def focal_loss(raw, y, gamma):
    """Per-sample true focal loss ``-(1 - p_y)^gamma log p_y`` of logits, in torch.

    Written with ``log p_y`` and ``log(1 - p_y)`` (log-sigmoid, log-softmax),
    so autograd gives the exact gradient, the modulating factor's included,
    with no 0/0 or overflow for large logits.

    Parameters
    ----------
    raw : Tensor of shape (n,) or (n, K)
        One binary logit (``P(y=1) = sigmoid(raw)``) or K softmax logits.
    y : Tensor of int64, shape (n,)
    gamma : float

    Returns
    -------
    loss : Tensor of shape (n,)
    """
    if raw.ndim == 1:
        z_t = torch.where(y == 1, raw, -raw)
        log_pt = torch.nn.functional.logsigmoid(z_t)
        log_u = torch.nn.functional.logsigmoid(-z_t)
    else:
        # A one-hot product instead of gather: its gradient needs no scatter,
        # which CUDA would accumulate in a nondeterministic order.
        is_true = torch.nn.functional.one_hot(y, raw.shape[1]).bool()
        log_p = torch.log_softmax(raw, dim=1)
        log_pt = torch.sum(log_p * is_true, dim=1)
        log_u = torch.logsumexp(log_p.masked_fill(is_true, -torch.inf), dim=1)
    if gamma == 0:
        return -log_pt
    return -torch.exp(gamma * log_u) * log_pt


class _Objective:
    """The objective of one Problem as a function of (X, coef, intercept), in torch.

    Constants are copied to ``device`` once (the inputs are never touched);
    :meth:`terms` is differentiable.
    """

    def __init__(self, problem, settings, device):
        def tensor(array, dtype=torch.float64):
            return torch.tensor(np.asarray(array), dtype=dtype, device=device)

        R = problem.R
        n, q = R.shape
        w = problem.row_weight
        V = problem.C_free / (q * problem.confidence_scale)
        total_confidence = problem.total_confidence
        # Unlabeled rows stay in the supervised term with weight zero: no
        # row indexing, whose gradient would be a scatter.
        s = np.where(problem.labeled, problem.sample_weight, 0.0)

        self.n, self.q = n, q
        self.n_classes = problem.n_classes
        self.rho = settings.rho
        self.lambda_reg = settings.lambda_reg
        self.gamma = settings.focal_gamma
        self.alpha = settings.aggregator_alpha
        self.aggregator = settings.aggregator
        self.aggregator_input = settings.aggregator_input
        self.R = tensor(R)
        self.V = tensor(V)
        self.VR = tensor(V * R)
        self.data_weight = tensor(w[:, None] * problem.C / total_confidence)
        self.ridge_weight = tensor(w / w.sum())
        self.y = tensor(np.where(problem.labeled, problem.y, 0), torch.int64)
        self.s = tensor(s / s.sum())
        # Row chunks bound the Gram workspace exactly as skcfe's ridge_solve does.
        d = settings.latent_dim
        self.chunk = max(1, min(n, _WORKSPACE_ENTRIES // max(d * d, q)))

    def fold_in(self, X):
        """Instance factors of every row: the batched, differentiable fold-in."""
        q, d = X.shape
        outer = (X[:, :, None] * X[:, None, :]).reshape(q, d * d)
        ridge = self.lambda_reg * torch.eye(d, dtype=X.dtype, device=X.device)
        blocks = []
        for start in range(0, self.n, self.chunk):
            rows = slice(start, start + self.chunk)
            A = (self.V[rows] @ outer).reshape(-1, d, d) + ridge
            b = self.VR[rows] @ X
            Y, info = torch.linalg.solve_ex(A, b[:, :, None])
            if bool(info.any()):
                raise ValueError(
                    "A fold-in hit a singular linear system: some rows have too little "
                    "confidence to determine their latent factors. Increase lambda_reg (it "
                    "must be > 0 to guarantee a unique solution) or lower latent_dim."
                )
            blocks.append(Y[:, :, 0])
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)

    def logits(self, F, coef, intercept):
        """Aggregator logits of reconstructed rows ``F``, as skcfe._aggregator.aggregate."""
        if self.aggregator == "weighted":
            if self.aggregator_input == "logit":
                # As skcfe._aggregator.features: clipped, so the gradient is zero
                # where a reconstruction leaves [LOGIT_CLIP, 1 - LOGIT_CLIP].
                F = torch.logit(F.clamp(LOGIT_CLIP, 1.0 - LOGIT_CLIP))
            raw = F @ coef.T + intercept
            return raw[:, 0] if coef.shape[0] == 1 else raw
        clipped = F.clamp(0.0, 1.0)
        if self.n_classes == 2:
            p = clipped.mean(dim=1).clamp(_EPS, 1.0 - _EPS)
            return torch.log(p) - torch.log1p(-p)
        per_class = clipped.reshape(len(F), -1, self.n_classes).mean(dim=1)
        total = per_class.sum(dim=1, keepdim=True)
        uniform = torch.full_like(per_class, 1.0 / self.n_classes)
        p = torch.where(total > 0, per_class / torch.where(total > 0, total, 1.0), uniform)
        return torch.log(p.clamp(_EPS, 1.0 - _EPS))

    def terms(self, X, coef, intercept):
        """``(trained objective, reconstruction, supervised, penalty)`` as 0-d tensors."""
        Y = self.fold_in(X)
        R_hat = Y @ X.T
        residual = self.R - R_hat
        data = torch.sum(self.data_weight * residual * residual)
        ridge = torch.sum(X * X) / self.q + torch.dot(self.ridge_weight, torch.sum(Y * Y, dim=1))
        reconstruction = data + self.lambda_reg * ridge
        raw = self.logits(R_hat, coef, intercept)
        supervised = torch.dot(self.s, focal_loss(raw, self.y, self.gamma))
        penalty = (
            0.5 * self.alpha * torch.sum(coef * coef)
            if self.aggregator == "weighted"
            else torch.zeros((), dtype=X.dtype, device=X.device)
        )
        total = self.rho * reconstruction + (1.0 - self.rho) * (supervised + penalty)
        return total, reconstruction, supervised, penalty


def objective(problem, settings, X, coef, intercept, device="cpu"):
    """The exact objective at given parameters, computed by the torch backend.

    Parameters
    ----------
    problem : Problem
    settings : Settings
    X : ndarray of shape (n_columns, latent_dim)
        Classifier factors; the instance factors are their fold-in.
    coef : ndarray of shape (n_outputs, n_columns)
    intercept : ndarray of shape (n_outputs,)
    device : str, default='cpu'

    Returns
    -------
    terms : dict of str to float
        ``objective`` (``rho * reconstruction + (1 - rho) * supervised``, what
        the history reports and :mod:`skcfe._objective` defines),
        ``reconstruction``, ``supervised`` (the weighted mean focal loss),
        ``penalty`` (the aggregator's ``alpha / 2 |coef|^2``) and ``trained``
        (the minimized ``rho * reconstruction + (1 - rho) * (supervised +
        penalty)``).
    """
    model = _Objective(problem.materialized(), settings, resolve_device(device))

    def tensor(array):
        return torch.tensor(np.asarray(array, dtype=np.float64), device=model.R.device)

    with torch.no_grad():
        trained, reconstruction, supervised, penalty = model.terms(
            tensor(X), tensor(coef), tensor(intercept)
        )
    values = [float(t) for t in (trained, reconstruction, supervised, penalty)]
    return {
        "objective": combine(settings.rho, values[1], values[2]),
        "reconstruction": values[1],
        "supervised": values[2],
        "penalty": values[3],
        "trained": values[0],
    }


# --------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------


class _Evaluator:
    """Objective and gradient of a flat parameter vector, for the optimizers.

    ``theta`` holds the trainable parameters: ``X``, then (when the aggregator
    is learned) ``coef`` and ``intercept``, raveled. Evaluations are cached by
    value: the epoch callback needs the terms at the point the line search
    accepted, which the solver has always evaluated already.
    """

    def __init__(self, model, shapes, fixed, device):
        self.model = model
        self.shapes = shapes
        self.fixed = fixed
        self.device = device
        self.cache = {}

    def unpack(self, flat):
        parts, start = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            parts.append(flat[start : start + size].reshape(shape))
            start += size
        return [*parts, *self.fixed]

    def __call__(self, theta):
        """``(trained objective, gradient)`` at ``theta``, as float and float64 array."""
        key = theta.tobytes()
        if key not in self.cache:
            flat = torch.tensor(theta, dtype=torch.float64, device=self.device, requires_grad=True)
            terms = self.model.terms(*self.unpack(flat))
            terms[0].backward()
            values = [float(t.detach()) for t in terms]
            grad = flat.grad.cpu().numpy().astype(np.float64)
            if not (np.isfinite(values[0]) and np.all(np.isfinite(grad))):
                raise _NonFiniteObjective
            # Only the latest points matter: the line search's last trials.
            if len(self.cache) >= 8:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = (values, grad)
        values, grad = self.cache[key]
        return values[0], grad.copy()

    def terms(self, theta):
        """``[trained, reconstruction, supervised, penalty]`` at ``theta``."""
        self(theta)
        return self.cache[theta.tobytes()][0]


class _NonFiniteObjective(Exception):
    """The objective or its gradient is not finite."""


class _Converged(Exception):
    """Raised by the epoch callback when the stopping rule is met."""


def _initial_aggregator(problem, settings, X):
    """Log-prior intercept and the aggregator trained on the fold-in of the start."""
    labeled = problem.labeled
    y, s = problem.y[labeled], problem.sample_weight[labeled]
    k = n_outputs(problem.n_classes)
    q = problem.R.shape[1]
    if settings.aggregator == "mean":
        # Not learned: the equal weights of the average, as ALS reports them.
        return np.full((k, q), 1.0 / (q // (1 if k == 1 else k))), np.zeros(k)
    coef = np.zeros((k, q))
    intercept = prior_intercept(y, s, problem.n_classes)
    Y = fold_in(problem.R, problem.C_free, X, settings.lambda_reg, problem.confidence_scale)
    F = features((Y @ X.T)[labeled], settings.aggregator_input)
    return fit_weighted(
        F, y, s, coef, intercept, gamma=settings.focal_gamma, alpha=settings.aggregator_alpha
    )


@contextmanager
def _cpu_threads(device, work):
    """One intra-op thread for a small CPU problem, restored on exit.

    Only from the main thread: the setting is process-wide, and fits running
    concurrently in other threads could otherwise restore each other's value.
    """
    previous = torch.get_num_threads()
    if (
        device.type != "cpu"
        or work > _PARALLEL_WORK
        or previous == 1
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit(problem, settings, rng):
    """Minimize the exact objective by L-BFGS through the differentiable fold-in.

    Parameters
    ----------
    problem : Problem
    settings : Settings
        ``settings.torch`` (:class:`~skcfe.backends.TorchOptions`) holds the
        device, the solver and Adam's learning rate, validated when built.
    rng : numpy.random.Generator
        Seeds the initial classifier factors.

    Returns
    -------
    BackendResult
        ``converged`` is whether the returned parameters are stationary,
        ``|grad|^2 <= tol * |objective|`` (see the module docstring).
    """
    # The whole confidence arrays (ALS reads them by rows; here they become tensors).
    problem = problem.materialized()
    options = settings.torch
    device = resolve_device(options.device)
    solver, learning_rate = options.solver, float(options.learning_rate)

    X0 = initial_factors(problem.R, problem.row_weight, settings.latent_dim, rng)
    coef0, intercept0 = _initial_aggregator(problem, settings, X0)
    # With rho = 1 the objective ignores the aggregator, and 'mean' has none.
    learn_aggregator = settings.aggregator == "weighted" and settings.rho < 1.0
    n, q = problem.R.shape
    with _cpu_threads(device, n * q * settings.latent_dim**2):
        model = _Objective(problem, settings, device)
        if learn_aggregator:
            shapes, fixed = [X0.shape, coef0.shape, intercept0.shape], []
            theta0 = np.concatenate([X0.ravel(), coef0.ravel(), intercept0])
        else:
            shapes = [X0.shape]
            fixed = [
                torch.tensor(a, dtype=torch.float64, device=device) for a in (coef0, intercept0)
            ]
            theta0 = X0.ravel().copy()
        evaluate = _Evaluator(model, shapes, fixed, device)
        polish = None
        if learn_aggregator:

            def polish(theta):
                return _polish_aggregator(problem, settings, theta, X0.shape, coef0.shape)

        try:
            theta, converged, history, stop_reason = _run(
                evaluate, theta0, settings, solver, learning_rate, polish
            )
        except _NonFiniteObjective:
            raise ValueError(
                "The objective became non-finite during the torch backend's fit. Check the "
                "base estimators' probabilities, or increase lambda_reg / aggregator_alpha"
                + (", or lower learning_rate." if solver == "adam" else ".")
            ) from None

    X = theta[: X0.size].reshape(X0.shape).copy()
    if learn_aggregator:
        coef = theta[X0.size : X0.size + coef0.size].reshape(coef0.shape).copy()
        intercept = theta[X0.size + coef0.size :].copy()
    elif settings.aggregator == "weighted":
        coef, intercept, terms = _fit_aggregator_last(problem, settings, X, coef0, intercept0)
        for key in history:
            history[key][-1] = terms[key]
    else:
        coef, intercept = coef0, intercept0
    return BackendResult(
        classifier_factors=X,
        coef=coef,
        intercept=intercept,
        n_iter=len(history["objective"]),
        converged=converged,
        history=history,
        stop_reason=stop_reason,
    )


def _run(evaluate, theta0, settings, solver, learning_rate, polish=None):
    """Epochs of ``solver`` from ``theta0``, with the history and the stopping rule.

    ``polish(theta)`` (when the aggregator is trained) returns ``theta`` with
    the aggregator solved to full precision on the fold-in features of its
    classifier factors; it runs whenever the optimizer stops, so the fit
    ends, as ALS does, with the aggregator solved for the final factors.

    L-BFGS stops when the relative change of the trained objective over an
    epoch falls below ``tol``, when its line search finds no decrease, or at
    ``max_iter`` epochs. Unless that is ``max_iter``, the aggregator is
    polished and, when the point is not stationary (a stall at a kink of the
    clipped logits, or the polish moved the objective), L-BFGS restarts with
    a fresh memory from there, as long as the last run and polish lowered
    the objective by more than ``tol`` relative. Adam runs once. Converged
    means stationary: ``|grad|^2 <= tol * |objective|`` at the returned
    parameters (the gradient over every trained parameter).

    Returns the final parameters, whether the fit converged, the history
    (its last entry the exact objective of the returned parameters) and why
    it stopped (:class:`~skcfe.backends._result.BackendResult`'s
    ``stop_reason``).
    """
    history = {"objective": [], "reconstruction": [], "supervised": []}
    state = {"theta": theta0, "previous": evaluate.terms(theta0)[0]}

    def below_tol(change, value):
        return change <= settings.tol * max(abs(value), 1e-12)

    def epoch(theta):
        trained, reconstruction, supervised, _ = evaluate.terms(theta)
        objective_value = combine(settings.rho, reconstruction, supervised)
        for key, value in zip(history, (objective_value, reconstruction, supervised)):
            history[key].append(value)
        state["theta"] = theta.copy()
        if settings.verbose:
            print(
                f"[torch] epoch {len(history['objective'])}: objective={objective_value:.6g} "
                f"reconstruction={reconstruction:.6g} supervised={supervised:.6g}"
            )
        change = abs(state["previous"] - trained)
        state["previous"] = trained
        if below_tol(change, trained):
            raise _Converged

    def polished(theta):
        """``theta`` with the aggregator polished, unless that does not lower the objective."""
        if polish is None:
            return theta
        candidate = polish(theta)
        # fit_weighted does not increase its objective; this guards rounding only.
        return candidate if evaluate.terms(candidate)[0] <= evaluate.terms(theta)[0] else theta

    def stationary(theta):
        value, gradient = evaluate(theta)
        return bool(np.dot(gradient, gradient) <= settings.tol * max(abs(value), 1e-12))

    def finish(theta, stop):
        if not history["objective"]:
            # No epoch was taken (L-BFGS could not leave the start): it is the only one.
            state["previous"] = np.inf
            epoch(theta)
        else:
            _, reconstruction, supervised, _ = evaluate.terms(theta)
            values = (combine(settings.rho, reconstruction, supervised), reconstruction, supervised)
            for key, value in zip(history, values):
                history[key][-1] = value
        converged = stationary(theta)
        if len(history["objective"]) >= settings.max_iter and not converged:
            stop = "max_iter"
        return theta, converged, history, "converged" if converged else stop

    if solver == "adam":
        stop = "max_iter"
        try:
            _adam(evaluate, theta0, settings.max_iter, learning_rate, epoch)
        except _Converged:
            stop = "stalled"
        return finish(polished(state["theta"]), stop)

    theta = theta0
    idle = 0  # consecutive L-BFGS runs that took no epoch
    stop = "max_iter"
    while len(history["objective"]) < settings.max_iter:
        first = len(history["objective"])
        budget = settings.max_iter - first
        state["theta"] = theta
        start_value = evaluate.terms(theta)[0]
        try:
            result = minimize(
                evaluate,
                theta,
                jac=True,
                method="L-BFGS-B",
                callback=lambda intermediate_result: epoch(intermediate_result.x),
                # The relative-change rule (tol) is applied by the callback alone.
                options={
                    "maxiter": budget,
                    "maxfun": _MAX_EVALS_PER_EPOCH * budget,
                    "maxcor": _HISTORY_SIZE,
                    "ftol": 0.0,
                    "gtol": 0.0,
                },
            )
            # With ftol = gtol = 0, L-BFGS-B ends by itself before max_iter only
            # when its line search finds no decrease ("ABNORMAL"): at a
            # stationary point, or at a kink where a reconstruction crosses the
            # logit clip, which is not convergence.
            stop = "max_iter" if result.status == 1 else "line_search"
        except _Converged:
            stop = "stalled"
        epochs = len(history["objective"]) - first
        theta = polished(state["theta"])
        state["previous"] = trained = evaluate.terms(theta)[0]
        if stop == "max_iter" or stationary(theta):
            break
        # Not stationary: restart L-BFGS with a fresh memory from the polished
        # point while that makes progress (more than tol since the last restart).
        idle = 0 if epochs else idle + 1
        if idle >= 2 or below_tol(start_value - trained, trained):
            break
        if settings.verbose:
            reason = "the line search failed" if stop == "line_search" else "tol was met"
            print(
                f"[torch] {reason} at epoch {len(history['objective'])} away from a "
                "stationary point: restarting L-BFGS"
            )
    return finish(theta, stop)


def _adam(evaluate, theta, max_iter, learning_rate, epoch):
    """Full-batch Adam (Kingma and Ba 2015, default moments), one step per epoch."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t in range(1, max_iter + 1):
        _, grad = evaluate(theta)
        m = beta1 * m + (1.0 - beta1) * grad
        v = beta2 * v + (1.0 - beta2) * grad * grad
        theta = theta - learning_rate * (m / (1.0 - beta1**t)) / (
            np.sqrt(v / (1.0 - beta2**t)) + eps
        )
        epoch(theta)


def _solve_aggregator(problem, settings, X, coef, intercept):
    """The aggregator trained to convergence on the fold-in features of ``X``.

    Warm-started from ``(coef, intercept)``, the weights trained so far.
    Returns ``(coef, intercept, Y, R_hat)``, the last two of all rows.
    """
    labeled = problem.labeled
    Y = fold_in(problem.R, problem.C_free, X, settings.lambda_reg, problem.confidence_scale)
    R_hat = Y @ X.T
    coef, intercept = fit_weighted(
        features(R_hat[labeled], settings.aggregator_input),
        problem.y[labeled],
        problem.sample_weight[labeled],
        coef,
        intercept,
        gamma=settings.focal_gamma,
        alpha=settings.aggregator_alpha,
        warm_start=True,
    )
    return coef, intercept, Y, R_hat


def _polish_aggregator(problem, settings, theta, factor_shape, coef_shape):
    """``theta`` with its aggregator solved to full precision for its factors fixed.

    The ALS backend's last step: with ``X`` fixed the trained objective is
    ``(1 - rho)`` times :func:`skcfe._aggregator.fit_weighted`'s objective
    plus a constant, which that solves to full precision (by Newton up to
    1500 weights), where L-BFGS on all parameters together stalls at the
    kinks of the clipped logits with the aggregator's gradient far from zero.
    """
    n_factors, n_coef = int(np.prod(factor_shape)), int(np.prod(coef_shape))
    X = theta[:n_factors].reshape(factor_shape)
    coef = theta[n_factors : n_factors + n_coef].reshape(coef_shape)
    coef, intercept, _, _ = _solve_aggregator(
        problem, settings, X, coef, theta[n_factors + n_coef :]
    )
    return np.concatenate([X.ravel(), coef.ravel(), intercept])


def _fit_aggregator_last(problem, settings, X, coef, intercept):
    """With rho = 1 the objective ignores the aggregator: fit it to the final features."""
    labeled = problem.labeled
    y, s = problem.y[labeled], problem.sample_weight[labeled]
    coef, intercept, Y, R_hat = _solve_aggregator(problem, settings, X, coef, intercept)
    raw = np_aggregate(
        R_hat[labeled], "weighted", coef, intercept, problem.n_classes, settings.aggregator_input
    )
    supervised = supervised_loss(raw, y, s, settings.focal_gamma)
    reconstruction = reconstruction_loss(
        problem.R, problem.C, Y, X, problem.row_weight, settings.lambda_reg
    )
    terms = {
        "objective": combine(settings.rho, reconstruction, supervised),
        "reconstruction": reconstruction,
        "supervised": supervised,
    }
    return coef, intercept, terms
