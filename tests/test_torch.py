"""The torch backend: exact objective, exact gradients, and the estimator on top of it."""

import dataclasses
import importlib
import pickle
import re
import sys

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed: backend='torch' is untested (pip install torch)"
)

from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GridSearchCV

from skcfe import CFEnsembleClassifier
from skcfe._aggregator import aggregate, fit_weighted, raw_to_proba, supervised_loss
from skcfe._confidence import apply_confidence, fit_confidence, label_targets
from skcfe._losses import _focal_terms
from skcfe._objective import combine, reconstruction_loss
from skcfe.backends import Problem, Settings, TorchOptions, als, fold_in
from skcfe.backends import torch as torch_backend

from .conftest import light_estimators


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Same reason as conftest's BLAS limit: tiny problems, stable timings.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- problems ------------------------------------------------------------------


class Ensemble:
    """Base classifiers of mixed quality with correlated errors, as a generator of R.

    Each classifier sees the class evidence through noise shared by all of them
    (so the mean of R is not perfect) and noise of its own, and reports a
    miscalibrated probability. ``draw`` gives fresh rows of the same ensemble.
    """

    def __init__(self, n_classifiers=10, n_classes=2, positive_rate=0.1, seed=0):
        rng = np.random.default_rng(seed)
        self.n_classes = n_classes
        self.priors = np.r_[
            np.full(n_classes - 1, (1 - positive_rate) / (n_classes - 1)), positive_rate
        ]
        self.noise = np.exp(rng.uniform(np.log(0.4), np.log(4.0), n_classifiers))
        self.temperature = np.exp(rng.normal(0.0, 0.4, n_classifiers))
        self.bias = rng.normal(0.0, 0.5, (n_classifiers, n_classes))

    def draw(self, n, rng):
        K = self.n_classes
        y = rng.choice(K, size=n, p=self.priors)
        evidence = 2.5 * np.eye(K)[y] + 1.6 * rng.standard_normal((n, K))
        views = evidence[:, None, :] + self.noise[None, :, None] * rng.standard_normal(
            (n, len(self.noise), K)
        )
        logits = self.temperature[None, :, None] * (views + np.log(self.priors)) + self.bias
        proba = np.exp(logits - logits.max(axis=2, keepdims=True))
        proba /= proba.sum(axis=2, keepdims=True)
        R = proba[:, :, 1] if K == 2 else proba.reshape(n, -1)
        return R, y


def make_problem(
    R, y, n_classes, *, labeled=None, sample_weight=None, class_weights=True, confidence="certainty"
):
    """A Problem as the estimator builds it, from R and labels directly."""
    n = len(y)
    labeled = np.ones(n, dtype=bool) if labeled is None else labeled
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    m = R.shape[1] // (1 if n_classes == 2 else n_classes)
    T = label_targets(y, n_classes, m) * labeled[:, None]
    C, state = fit_confidence(
        confidence, R, T, labeled, w, n_classes=n_classes, label_aware_alpha=1.0
    )
    counts = np.bincount(y[labeled], weights=w[labeled], minlength=n_classes)
    cw = counts.sum() / (n_classes * counts) if class_weights else np.ones(n_classes)
    problem = Problem(
        R=R,
        C=C,
        C_free=apply_confidence(state, R),
        T=T,
        y=y,
        labeled=labeled,
        row_weight=w,
        sample_weight=np.where(labeled, w * cw[y], 0.0),
        n_classes=n_classes,
    )
    return problem, state


def make_settings(**params):
    base = {
        "latent_dim": 3,
        "rho": 0.5,
        "lambda_reg": 0.1,
        "focal_gamma": 0.0,
        "aggregator": "weighted",
        "aggregator_alpha": 1e-3,
        "max_iter": 100,
        "tol": 1e-4,
        "torch": TorchOptions(learning_rate=0.05, device="cpu"),
    }
    base.update(params)
    return Settings(**base)


def small_problem(n_classes=2, n=120, seed=0, **kwargs):
    ensemble = Ensemble(n_classifiers=4, n_classes=n_classes, positive_rate=0.25, seed=seed)
    R, y = ensemble.draw(n, np.random.default_rng(seed + 1))
    return make_problem(R, y, n_classes, **kwargs)[0]


def numpy_objective(problem, settings, X, coef, intercept):
    """The reference: skcfe._objective with the numpy fold-in and aggregator."""
    lam = settings.lambda_reg
    Y = fold_in(problem.R, problem.C_free, X, lam, problem.confidence_scale)
    reconstruction = reconstruction_loss(problem.R, problem.C, Y, X, problem.row_weight, lam)
    lab = problem.labeled
    raw = aggregate(
        (Y @ X.T)[lab],
        settings.aggregator,
        coef,
        intercept,
        problem.n_classes,
        settings.aggregator_input,
    )
    supervised = supervised_loss(
        raw, problem.y[lab], problem.sample_weight[lab], settings.focal_gamma
    )
    return combine(settings.rho, reconstruction, supervised), reconstruction, supervised


def predict_proba(result, settings, problem, state, R):
    """What predict_proba computes for rows R, in numpy only (no posterior correction)."""
    X = result.classifier_factors
    Y = fold_in(R, apply_confidence(state, R), X, settings.lambda_reg, problem.confidence_scale)
    raw = aggregate(Y @ X.T, settings.aggregator, result.coef, result.intercept, problem.n_classes)
    return raw_to_proba(raw)


def make(**params):
    params.setdefault("cv", 3)
    params.setdefault("latent_dim", 2)
    params.setdefault("backend", "torch")
    return CFEnsembleClassifier(light_estimators(), **params)


# -- the objective and its gradient -------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("aggregator", ["weighted", "mean"])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_objective_equals_numpy_reference(n_classes, aggregator, gamma):
    rng = np.random.default_rng(0)
    n = 60
    labeled = rng.uniform(size=n) < 0.8
    problem = small_problem(
        n_classes,
        n=n,
        labeled=labeled,
        sample_weight=rng.uniform(0.2, 3.0, n),
        confidence="label_aware",
    )
    settings = make_settings(
        rho=0.3, focal_gamma=gamma, aggregator=aggregator, aggregator_alpha=0.01
    )
    q = problem.R.shape[1]
    k = 1 if n_classes == 2 else n_classes
    X = rng.standard_normal((q, settings.latent_dim))
    coef, intercept = rng.standard_normal((k, q)), rng.standard_normal(k)
    if aggregator == "mean":
        coef, intercept = np.full((k, q), 1.0 / (q // k)), np.zeros(k)

    terms = torch_backend.objective(problem, settings, X, coef, intercept)
    expected = numpy_objective(problem, settings, X, coef, intercept)
    for key, value in zip(["objective", "reconstruction", "supervised"], expected):
        assert terms[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    penalty = 0.5 * settings.aggregator_alpha * np.sum(coef**2) if aggregator == "weighted" else 0.0
    assert terms["penalty"] == pytest.approx(penalty, rel=1e-12)
    trained = settings.rho * expected[1] + (1 - settings.rho) * (expected[2] + penalty)
    assert terms["trained"] == pytest.approx(trained, rel=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_focal_gradient_through_autograd_equals_analytic(gamma, n_classes):
    rng = np.random.default_rng(int(gamma * 10) + n_classes)
    n = 200
    shape = (n,) if n_classes == 2 else (n, n_classes)
    raw = rng.normal(0.0, 3.0, shape)
    raw[:5] *= 10.0  # confident rows, right and wrong
    y = rng.integers(0, n_classes, n)
    raw_t = torch.tensor(raw, requires_grad=True)
    loss_t = torch_backend.focal_loss(raw_t, torch.tensor(y), gamma)
    loss_t.sum().backward()
    loss, grad = _focal_terms(y, raw, gamma)
    np.testing.assert_allclose(loss_t.detach().numpy(), loss, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(raw_t.grad.numpy(), grad, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_objective_gradient_through_the_fold_in_is_exact(n_classes):
    """Finite differences of the whole objective (fold-in solve included)."""
    problem = small_problem(n_classes, n=25, confidence="uniform")
    settings = make_settings(latent_dim=2, focal_gamma=1.5)
    model = torch_backend._Objective(problem, settings, torch.device("cpu"))
    rng = np.random.default_rng(1)
    q = problem.R.shape[1]
    k = 1 if n_classes == 2 else n_classes
    params = tuple(
        torch.tensor(a, requires_grad=True)
        for a in (rng.standard_normal((q, 2)), rng.standard_normal((k, q)), rng.standard_normal(k))
    )
    assert torch.autograd.gradcheck(lambda *p: model.terms(*p)[0], params, eps=1e-6, atol=1e-7)


# -- fitting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_classes, params",
    [
        (2, {}),
        (2, {"focal_gamma": 2.0, "rho": 0.2}),
        (2, {"aggregator": "mean"}),
        (3, {"focal_gamma": 1.0}),
    ],
)
def test_torch_reaches_an_objective_no_worse_than_als(n_classes, params):
    problem = small_problem(n_classes, n=150)
    settings = make_settings(**params)
    fits = {
        name: backend.fit(problem, settings, np.random.default_rng(0))
        for name, backend in [("als", als), ("torch", torch_backend)]
    }
    assert fits["torch"].history["objective"][-1] <= fits["als"].history["objective"][-1] + 1e-9
    # Also in what torch minimizes (the aggregator's penalty included).
    trained = {
        name: torch_backend.objective(problem, settings, r.classifier_factors, r.coef, r.intercept)[
            "trained"
        ]
        for name, r in fits.items()
    }
    assert trained["torch"] <= trained["als"] + 1e-9


@pytest.mark.parametrize("n_classes", [2, 3])
def test_history_is_exact_at_the_returned_parameters(n_classes):
    problem = small_problem(n_classes)
    settings = make_settings(focal_gamma=1.0)
    result = torch_backend.fit(problem, settings, np.random.default_rng(0))
    assert set(result.history) == set(als.fit(problem, settings, np.random.default_rng(0)).history)
    assert all(len(v) == result.n_iter for v in result.history.values())
    assert result.converged and result.n_iter < settings.max_iter
    expected = numpy_objective(
        problem, settings, result.classifier_factors, result.coef, result.intercept
    )
    last = [result.history[key][-1] for key in ("objective", "reconstruction", "supervised")]
    np.testing.assert_allclose(last, expected, rtol=1e-10, atol=1e-12)
    for array in (result.classifier_factors, result.coef, result.intercept):
        assert isinstance(array, np.ndarray) and array.dtype == np.float64


def test_objective_never_increases():
    # Without the aggregator's penalty the history holds the minimized objective.
    problem = small_problem()
    settings = make_settings(tol=0.0, max_iter=30, focal_gamma=2.0, aggregator_alpha=0.0)
    result = torch_backend.fit(problem, settings, np.random.default_rng(0))
    history = np.array(result.history["objective"])
    assert len(history) > 5 and np.all(np.diff(history) <= 1e-14)


def test_supervision_shapes_the_classifier_factors():
    """Unlike ALS, the labels reach X through the gradient: rho changes X."""
    problem = small_problem(confidence="uniform")
    fits = [
        torch_backend.fit(problem, make_settings(rho=rho), np.random.default_rng(0))
        for rho in (0.2, 0.9)
    ]
    assert not np.allclose(fits[0].classifier_factors, fits[1].classifier_factors, atol=1e-3)


def test_rho_one_trains_the_aggregator_on_the_final_features():
    problem = small_problem()
    settings = make_settings(rho=1.0)
    result = torch_backend.fit(problem, settings, np.random.default_rng(0))
    X = result.classifier_factors
    lab = problem.labeled
    F = (
        fold_in(problem.R, problem.C_free, X, settings.lambda_reg, problem.confidence_scale) @ X.T
    )[lab]
    coef, _ = fit_weighted(
        F,
        problem.y[lab],
        problem.sample_weight[lab],
        result.coef,
        result.intercept,
        gamma=0.0,
        alpha=1e-3,
    )
    np.testing.assert_allclose(coef, result.coef, rtol=1e-6, atol=1e-8)
    expected = numpy_objective(problem, settings, X, result.coef, result.intercept)
    assert result.history["objective"][-1] == pytest.approx(expected[0], rel=1e-10)


def test_inputs_are_not_mutated_and_results_are_deterministic():
    problem = small_problem(
        labeled=np.arange(120) % 7 != 0, sample_weight=np.linspace(0.5, 2.0, 120)
    )
    before = {
        name: np.copy(getattr(problem, name))
        for name in problem.__dataclass_fields__
        if name != "n_classes"
    }
    settings = make_settings(latent_dim=6)  # more dimensions than columns: random start
    a = torch_backend.fit(problem, settings, np.random.default_rng(5))
    b = torch_backend.fit(problem, settings, np.random.default_rng(5))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(problem, name), value)
    np.testing.assert_array_equal(a.classifier_factors, b.classifier_factors)
    np.testing.assert_array_equal(a.coef, b.coef)
    assert a.history == b.history
    c = torch_backend.fit(problem, settings, np.random.default_rng(6))
    assert not np.array_equal(a.classifier_factors, c.classifier_factors)


def test_sample_weight_acts_like_repeating_rows():
    problem_rows = small_problem(n=60)
    weights = np.random.default_rng(0).integers(0, 3, 60).astype(float)
    weighted = make_problem(problem_rows.R, problem_rows.y, 2, sample_weight=weights)[0]
    repeat = np.repeat(np.arange(60), weights.astype(int))
    repeated = make_problem(problem_rows.R[repeat], problem_rows.y[repeat], 2)[0]
    settings = make_settings(tol=1e-10, focal_gamma=1.0)
    a = torch_backend.fit(weighted, settings, np.random.default_rng(0))
    b = torch_backend.fit(repeated, settings, np.random.default_rng(0))
    np.testing.assert_allclose(a.history["objective"][-1], b.history["objective"][-1], rtol=1e-8)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-4, atol=1e-6)


def trained_gradient(problem, settings, result):
    """The trained objective at a result and its gradient in (X, coef, intercept)."""
    model = torch_backend._Objective(problem, settings, torch.device("cpu"))
    params = [
        torch.tensor(a, requires_grad=True)
        for a in (result.classifier_factors, result.coef, result.intercept)
    ]
    value = model.terms(*params)[0]
    value.backward()
    return float(value.detach()), [p.grad.numpy() for p in params]


def kink_settings(**params):
    """Focal settings whose clipped-logit kinks stall L-BFGS on small_problem(seed=3)."""
    return make_settings(latent_dim=3, lambda_reg=1e-3, focal_gamma=2.0, aggregator_alpha=0.1,
                         aggregator_input="logit", **params)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_aggregator_is_solved_to_convergence_for_the_returned_factors(solver, n_classes):
    """As ALS does, the aggregator ends solved to full precision on the final features.

    L-BFGS on all parameters together stalls at kinks of the clipped logits
    (the relative change falls below tol with the aggregator's gradient still
    at 0.008-0.05 here); the polish by fit_weighted leaves it at rounding level.
    """
    problem = small_problem(n_classes, n=100, seed=3)
    settings = kink_settings(
        max_iter=20 if solver == "adam" else 100,
        torch=TorchOptions(solver=solver, learning_rate=0.05),
    )
    result = torch_backend.fit(problem, settings, np.random.default_rng(0))
    _, (_, grad_coef, grad_intercept) = trained_gradient(problem, settings, result)
    assert np.max(np.abs(grad_coef)) < 1e-9
    assert np.max(np.abs(grad_intercept)) < 1e-9
    expected = numpy_objective(
        problem, settings, result.classifier_factors, result.coef, result.intercept
    )
    assert result.history["objective"][-1] == pytest.approx(expected[0], rel=1e-10)


def test_line_search_failure_away_from_a_stationary_point_is_not_convergence(monkeypatch):
    """scipy's ABNORMAL exit (the line search finds no decrease) is not convergence.

    Here L-BFGS-B lands on a kink of the clipped logits after 6 epochs and its
    line search fails with a gradient norm of 0.14: the old stop reported that
    as converged. Restarting from the polished aggregator does not get past the
    kink either, so the fit must report converged=False (a ConvergenceWarning
    in the estimator) unless it reaches a stationary point.
    """
    statuses = []
    minimize = torch_backend.minimize

    def spy(*args, **kwargs):
        result = minimize(*args, **kwargs)
        statuses.append(result.status)
        return result

    monkeypatch.setattr(torch_backend, "minimize", spy)
    problem = small_problem(3, n=100, seed=3)
    settings = kink_settings(tol=1e-10, max_iter=400)
    result = torch_backend.fit(problem, settings, np.random.default_rng(0))
    assert 2 in statuses, "the scenario needs L-BFGS-B's line search to fail"
    value, gradient = trained_gradient(problem, settings, result)
    squared_norm = sum(float(np.sum(g * g)) for g in gradient)
    stationary = squared_norm <= settings.tol * value
    assert result.n_iter < settings.max_iter
    assert result.converged == stationary
    assert not result.converged  # the kink is not a stationary point (|grad| ~ 0.16)
    # Everything the fit returns is still exact and at least as good as the old stop.
    expected = numpy_objective(
        problem, settings, result.classifier_factors, result.coef, result.intercept
    )
    assert result.history["objective"][-1] == pytest.approx(expected[0], rel=1e-10)
    assert value < 0.11172


def test_adam_solver_uses_the_learning_rate():
    problem = small_problem(n=60)
    fits = [
        torch_backend.fit(
            problem,
            make_settings(max_iter=20, tol=0.0,
                          torch=TorchOptions(solver="adam", learning_rate=lr)),
            np.random.default_rng(0),
        )
        for lr in (0.01, 0.1)
    ]
    assert not np.allclose(fits[0].classifier_factors, fits[1].classifier_factors)
    assert all(r.n_iter == 20 and not r.converged for r in fits)
    # the options are typed and checked once, where they are built
    with pytest.raises(ValueError, match="solver='sgd' is not one of"):
        TorchOptions(solver="sgd")
    with pytest.raises(ValueError, match="learning_rate=0 must be > 0"):
        TorchOptions(learning_rate=0)


def test_non_finite_objective_raises_a_value_error():
    problem = small_problem(n=30)
    C_free = problem.C_free.copy()
    C_free[0, 0] = np.nan
    broken = dataclasses.replace(problem, C_free=C_free)
    with pytest.raises(ValueError, match="objective became non-finite.*lambda_reg"):
        torch_backend.fit(broken, make_settings(aggregator="mean"), np.random.default_rng(0))


def test_class_weights_do_not_collapse_held_out_ranking():
    """The reference's failure: class weights + a train-only representation.

    With 10% positives and class weights, PR-AUC stays well above the positive
    rate, and fresh rows of the same ensemble (predicted by numpy fold-in)
    rank nearly as well as the training rows.
    """
    ensemble = Ensemble(n_classifiers=10, positive_rate=0.1, seed=3)
    R, y = ensemble.draw(500, np.random.default_rng(0))
    R_new, y_new = ensemble.draw(2000, np.random.default_rng(1))
    problem, state = make_problem(R, y, 2, class_weights=True)
    settings = make_settings(latent_dim=4, focal_gamma=2.0)
    result = torch_backend.fit(problem, settings, np.random.default_rng(0))
    in_sample = average_precision_score(y, predict_proba(result, settings, problem, state, R)[:, 1])
    held_out = average_precision_score(
        y_new, predict_proba(result, settings, problem, state, R_new)[:, 1]
    )
    assert in_sample > 3 * y.mean()
    assert held_out >= 0.8 * in_sample
    # Nowhere near the collapse: about as good as averaging the base probabilities or better.
    assert held_out > 0.9 * average_precision_score(y_new, R_new.mean(axis=1))


def test_global_torch_threads_are_left_as_they_were():
    torch.set_num_threads(2)
    try:
        torch_backend.fit(small_problem(n=40), make_settings(), np.random.default_rng(0))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_verbose_prints_each_epoch(capsys):
    result = torch_backend.fit(
        small_problem(n=40), make_settings(verbose=1), np.random.default_rng(0)
    )
    out = capsys.readouterr().out
    assert out.count("[torch] epoch") == result.n_iter and "objective=" in out


# -- devices --------------------------------------------------------------------------


def test_device_names_are_validated():
    assert torch_backend.resolve_device("cpu").type == "cpu"
    assert torch_backend.resolve_device("auto").type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    with pytest.raises(ValueError, match="not a torch device"):
        torch_backend.resolve_device("gpu0")
    with pytest.raises(ValueError, match="not supported by the torch backend"):
        torch_backend.resolve_device("meta")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="CUDA is available: the missing-CUDA error cannot occur"
)
def test_cuda_without_cuda_is_explained(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match=r"CUDA is not available.*device='cpu'"):
        make(device="cuda").fit(X, y)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("n_classes", [2, 3])
def test_cuda_fit_returns_numpy_state_close_to_cpu(n_classes):
    problem = small_problem(n_classes, n=300)
    results = {
        device: torch_backend.fit(
            problem, make_settings(tol=1e-10, torch=TorchOptions(device=device)), np.random.default_rng(0)
        )
        for device in ("cpu", "cuda")
    }
    gpu, cpu = results["cuda"], results["cpu"]
    for array in (gpu.classifier_factors, gpu.coef, gpu.intercept):
        assert type(array) is np.ndarray and array.dtype == np.float64
    assert gpu.history["objective"][-1] == pytest.approx(cpu.history["objective"][-1], rel=1e-6)
    X_gpu, X_cpu = gpu.classifier_factors, cpu.classifier_factors
    lam, scale = 0.1, problem.confidence_scale
    R_hat_gpu = fold_in(problem.R, problem.C_free, X_gpu, lam, scale) @ X_gpu.T
    R_hat_cpu = fold_in(problem.R, problem.C_free, X_cpu, lam, scale) @ X_cpu.T
    np.testing.assert_allclose(R_hat_gpu, R_hat_cpu, atol=1e-3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_estimator_pickles_and_predicts_without_torch(binary_data, monkeypatch):
    X, y = binary_data
    gpu = make(device="cuda", tol=1e-8, max_iter=500, random_state=0).fit(X, y)
    cpu = make(device="cpu", tol=1e-8, max_iter=500, random_state=0).fit(X, y)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-3)
    blob = pickle.dumps(gpu)
    monkeypatch.setitem(sys.modules, "torch", None)
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(X), gpu.predict_proba(X))


# -- the estimator --------------------------------------------------------------------


def test_estimator_fits_binary_and_multiclass(binary_data, multiclass_data):
    for (X, y), k in [(binary_data, 1), (multiclass_data, 3)]:
        clf = make(random_state=0).fit(X, y)
        assert clf.score(X, y) > 0.8
        assert clf.coef_.shape == (k, clf.classifier_factors_.shape[0])
        for array in (clf.classifier_factors_, clf.coef_, clf.intercept_):
            assert type(array) is np.ndarray and array.dtype == np.float64
        reference = make(backend="als", random_state=0).fit(X, y)
        assert set(clf.history_) == set(reference.history_)
        assert all(len(v) == clf.n_iter_ for v in clf.history_.values())


def test_same_random_state_gives_identical_predictions(multiclass_data):
    X, y = multiclass_data
    a = make(random_state=1, focal_gamma=2.0).fit(X, y).predict_proba(X)
    b = make(random_state=1, focal_gamma=2.0).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_pickle_round_trip_and_predict_without_torch(binary_data, monkeypatch):
    X, y = binary_data
    clf = make(random_state=0, focal_gamma=1.0).fit(X, y)
    expected = clf.predict_proba(X)
    blob = pickle.dumps(clf)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "skcfe.backends.torch", raising=False)
    np.testing.assert_array_equal(clf.predict_proba(X), expected)
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(X), expected)


def test_missing_torch_raises_an_import_error_with_the_install_command(binary_data, monkeypatch):
    X, y = binary_data
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "skcfe.backends.torch", raising=False)
    importlib.invalidate_caches()
    with pytest.raises(ImportError, match=r"pip install"):
        make().fit(X, y)
    # ALS does not need torch.
    make(backend="als").fit(X, y)


def test_backend_switch_with_set_params_and_grid_search(binary_data):
    X, y = binary_data
    clf = make(backend="als", random_state=0).fit(X, y)
    als_factors = clf.classifier_factors_
    clf.set_params(backend="torch").fit(X, y)
    assert not np.allclose(clf.classifier_factors_, als_factors)
    grid = GridSearchCV(
        make(random_state=0), {"backend": ["als", "torch"]}, cv=3, scoring="average_precision"
    )
    grid.fit(X, y)
    assert list(grid.cv_results_["param_backend"]) == ["als", "torch"]
    # 20% positives: both backends rank far better than chance.
    assert np.all(grid.cv_results_["mean_test_score"] > 0.5)


def test_not_converging_warns_in_the_estimator(binary_data):
    X, y = binary_data
    with pytest.warns(ConvergenceWarning, match="backend='torch'"):
        clf = make(max_iter=2, tol=0.0, random_state=0).fit(X, y)
    assert clf.n_iter_ == 2


def test_a_stalled_fit_says_why_it_stopped_and_not_to_raise_max_iter():
    """A fit that stops before max_iter away from a stationary point names the stall.

    "Increase max_iter" would not help a run that stopped at epoch 21 of 100: the
    warning says that L-BFGS stalled (or its line search found no decrease) and
    what would help.
    """
    from sklearn.datasets import make_classification

    from skcfe import CFEnsembleTransformer

    X, y = make_classification(150, 5, n_informative=3, n_classes=3, random_state=0)
    for est in (CFEnsembleClassifier(light_estimators(), combiner="cf", backend="torch",
                                     focal_gamma=2.0, random_state=0),
                CFEnsembleTransformer(light_estimators(), backend="torch", focal_gamma=2.0,
                                      random_state=0)):
        with pytest.warns(ConvergenceWarning) as record:
            est.fit(X, y)
        message = str(record[0].message)
        assert est.n_iter_ < est.max_iter
        assert est._cf_model.stop_reason in ("stalled", "line_search")
        assert re.search(r"stopped after \d+ of max_iter=100 iterations\): L-BFGS", message)
        assert "More iterations will not help: aggregator_input='proba'" in message
        assert "Increase max_iter" not in message
    # max_iter reached: then more iterations is the advice
    with pytest.warns(ConvergenceWarning, match=r"max_iter was reached .* Increase max_iter"):
        CFEnsembleTransformer(light_estimators(), backend="torch", focal_gamma=2.0, tol=1e-10,
                              max_iter=5, random_state=0).fit(X, y)


def test_the_backend_result_says_why_it_stopped():
    problem = small_problem(3, n=100, seed=3)
    result = torch_backend.fit(problem, kink_settings(tol=1e-10, max_iter=400),
                               np.random.default_rng(0))
    assert not result.converged and result.stop_reason in ("line_search", "stalled")
    result = torch_backend.fit(problem, kink_settings(tol=1e-10, max_iter=3),
                               np.random.default_rng(0))
    assert result.stop_reason == "max_iter" and result.n_iter == 3
    adam = torch_backend.fit(
        small_problem(n=60),
        make_settings(max_iter=20, tol=0.0, torch=TorchOptions(solver="adam")),
        np.random.default_rng(0),
    )
    assert adam.stop_reason == "max_iter"
