"""Backends that fit the CF-Ensemble objective.

Each backend module exposes ``fit(problem, settings, rng) -> BackendResult``.
It receives validated arrays, never mutates them, never warns (the estimator
turns ``converged=False`` into a ConvergenceWarning) and returns numpy float64
arrays, so everything after fit is backend-agnostic. Only the torch backend
imports torch, and only when it is selected.
"""

from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import import_module

import numpy as np

from .._confidence import weighted_total
from ._result import BackendResult, fold_in, ridge_solve

BACKENDS = ("als", "torch")


@dataclass(frozen=True)
class Problem:
    """Validated inputs of a fit, shared by every backend.

    Attributes
    ----------
    R : ndarray of shape (n_samples, n_columns)
        Probability matrix (out-of-fold for labeled rows).
    C : ndarray or RowConfidence of shape (n_samples, n_columns)
        Training confidence (a label-aware strategy may use the labels).
        Backends read it by rows (``C[rows]``): :func:`~skcfe._cf.fit_cf`
        passes a :class:`~skcfe._confidence.RowConfidence`, which computes
        the rows' confidence from R on demand, so that no fit holds it whole.
    C_free : ndarray or RowConfidence of shape (n_samples, n_columns)
        Label-free confidence: what fold-in uses, for training rows as for new rows.
    T : ndarray of shape (n_samples, n_columns)
        Labels laid out like the columns of R (zero on unlabeled rows).
    y : ndarray of int, shape (n_samples,)
        Encoded labels (meaningless on unlabeled rows).
    labeled : ndarray of bool, shape (n_samples,)
    row_weight : ndarray of shape (n_samples,)
        Sample weights of all rows (the reconstruction term).
    sample_weight : ndarray of shape (n_samples,)
        Sample weights times class weights on labeled rows, zero elsewhere
        (the supervised term).
    n_classes : int
    """

    R: np.ndarray
    C: np.ndarray
    C_free: np.ndarray
    T: np.ndarray
    y: np.ndarray
    labeled: np.ndarray
    row_weight: np.ndarray
    sample_weight: np.ndarray
    n_classes: int

    @cached_property
    def total_confidence(self):
        """``sum_i w_i sum_u c_iu``, by blocks of rows (:func:`~skcfe._confidence.weighted_total`).

        Computed once per problem: a RowConfidence computes the confidence anew at each pass.
        """
        return weighted_total(self.C, self.row_weight)

    @property
    def confidence_scale(self):
        """Weighted mean confidence, which normalizes C in the objective."""
        w = self.row_weight
        return float(self.total_confidence / (w.sum() * self.C.shape[1]))

    def materialized(self):
        """This problem with ``C`` and ``C_free`` as arrays (computed if they are not).

        For the backends that need the whole arrays (torch); ALS reads them by rows.
        """
        if isinstance(self.C, np.ndarray) and isinstance(self.C_free, np.ndarray):
            return self
        C = np.asarray(self.C)
        C_free = C if self.C_free is self.C else np.asarray(self.C_free)
        return replace(self, C=C, C_free=C_free)


SOLVERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class TorchOptions:
    """Options of the torch backend alone (the ALS backend ignores them).

    Attributes
    ----------
    solver : {'lbfgs', 'adam'}
        Full-batch L-BFGS (its line search picks each step) or full-batch Adam.
    learning_rate : float
        Adam's step size (L-BFGS ignores it).
    device : str
        'cpu', 'cuda', 'cuda:N' or 'auto'.
    """

    solver: str = "lbfgs"
    learning_rate: float = 0.05
    device: str = "cpu"

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not one of {SOLVERS}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r} must be > 0.")


@dataclass(frozen=True)
class Settings:
    """Hyperparameters every backend honours, and the torch backend's typed options."""

    latent_dim: int
    rho: float
    lambda_reg: float
    focal_gamma: float
    aggregator: str
    aggregator_alpha: float
    max_iter: int
    tol: float
    aggregator_input: str = "proba"
    verbose: int = 0
    torch: TorchOptions = field(default_factory=TorchOptions)


def get_backend(name):
    """The backend module for ``name``; torch is imported only here, on demand."""
    if name == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "backend='torch' needs PyTorch, which is not installed. Install it with "
                "`pip install skcfe[torch]` (or `pip install torch`), or use backend='als'."
            ) from exc
    return import_module(f"skcfe.backends.{name}")


__all__ = [
    "BACKENDS", "SOLVERS", "BackendResult", "Problem", "Settings", "TorchOptions", "fold_in",
    "get_backend", "ridge_solve",
]
