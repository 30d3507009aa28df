r"""Closed-form inverse of the posterior distortion caused by focal loss and class weights.

Focal loss is classification-calibrated but not strictly proper: the minimizer ``q`` of the
focal risk is not the class posterior ``p``. Its stationarity conditions give ``p_k`` in
closed form as ``Psi_k(q) = h(q_k) / sum_j h(q_j)`` with

.. math:: h(v) = \frac{v}{(1 - v)^\gamma - \gamma (1 - v)^{\gamma - 1} v \log v}.

Class weights ``w_k`` shift the minimizer to the posterior of the prior-shifted
distribution ``p'_k ~ w_k p_k``; dividing by ``w_k`` and renormalizing undoes it.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import log_softmax

from ._losses import _check_gamma, _xlogx_over_u

__all__ = ["focal_posterior_correction"]

# Far enough from 0 and 1 to keep log(1 - v) finite and h bounded, close enough that the
# clipping moves no probability by more than 1e-12.
_EPS = 1e-12

# Tolerance on the row sums and the [0, 1] range: predict_proba of float32 models or of
# averaged probabilities is off by rounding, never by this much.
_PROBA_ATOL = 1e-6


def _psi(q, gamma):
    """Map focal-risk minimizers back to class posteriors, row by row.

    Parameters
    ----------
    q : ndarray of float64 of shape (n_samples, n_classes)
        Rows of probabilities summing to 1 (the focal-trained model's output).
    gamma : float
        Focusing parameter, ``>= 0``. ``gamma=0`` returns ``q`` up to the clipping.

    Returns
    -------
    p : ndarray of float64 of shape (n_samples, n_classes)
        ``Psi(q)``, rows summing to 1.

    Notes
    -----
    Computed in log space, ``log h(v) = log v - log((1 - v)**gamma * (1 - gamma * r))``
    with ``r = v log v / (1 - v)`` in ``[-1, 0]``, then normalized with a softmax: ``h``
    grows like ``(1 - v)**-gamma`` and would overflow for large ``gamma`` near ``v = 1``.
    The denominator of ``h`` is ``-G`` of :mod:`skcfe._losses`, the focal gradient's factor.
    """
    v = np.clip(q, _EPS, 1.0 - _EPS)
    u = 1.0 - v
    log_v = np.where(v > 0.5, np.log1p(-u), np.log(v))
    log_u = np.log(u)
    ratio = _xlogx_over_u(v, log_v, u)
    # log(u**gamma * (1 - gamma * ratio)), split so that u**gamma cannot underflow.
    log_denominator = gamma * log_u + np.log1p(-gamma * ratio)
    return np.exp(log_softmax(log_v - log_denominator, axis=1))


def _check_proba(proba):
    """Validate a matrix of class probabilities and return it as float64.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)

    Returns
    -------
    proba : ndarray of float64 of shape (n_samples, n_classes)
        Clipped into [0, 1] and renormalized so that each row sums to 1 exactly.

    Raises
    ------
    ValueError
        If the shape is wrong, or the values are not probabilities.
    """
    proba = np.asarray(proba)
    if proba.dtype.kind not in "biuf":
        raise ValueError(
            f"proba must be a numeric array of probabilities, got dtype {proba.dtype}."
        )
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(
            f"proba must be 2-D with shape (n_samples, n_classes) and n_classes >= 2, got shape "
            f"{proba.shape}. For a binary problem pass both columns, as predict_proba returns."
        )
    proba = proba.astype(np.float64)
    if not np.all(np.isfinite(proba)):
        raise ValueError("proba contains NaN or infinite values.")
    if np.any(proba < -_PROBA_ATOL) or np.any(proba > 1.0 + _PROBA_ATOL):
        raise ValueError(
            f"proba must lie in [0, 1]; found values from {proba.min()} to {proba.max()}. "
            "Pass probabilities (for example predict_proba), not logits."
        )
    row_sums = proba.sum(axis=1)
    if np.any(np.abs(row_sums - 1.0) > _PROBA_ATOL):
        worst = row_sums[np.argmax(np.abs(row_sums - 1.0))]
        raise ValueError(
            f"each row of proba must sum to 1 (within {_PROBA_ATOL}); found a row summing to "
            f"{worst}. Pass the full predict_proba output, one column per class."
        )
    proba = np.clip(proba, 0.0, 1.0)
    return proba / proba.sum(axis=1, keepdims=True)


def _check_class_weight(class_weight, n_classes):
    """Validate per-class weights.

    Parameters
    ----------
    class_weight : array-like of shape (n_classes,)
    n_classes : int

    Returns
    -------
    class_weight : ndarray of float64 of shape (n_classes,)

    Raises
    ------
    ValueError
        If the length is wrong or a weight is not positive and finite.
    """
    weights = np.asarray(class_weight)
    if weights.dtype.kind not in "biuf":
        raise ValueError(
            f"class_weight must be a numeric array with one weight per class, got dtype "
            f"{weights.dtype}. Map a dict to an array in the order of the proba columns."
        )
    if weights.shape != (n_classes,):
        raise ValueError(
            f"class_weight must have shape ({n_classes},), one weight per column of proba, "
            f"got shape {weights.shape}."
        )
    weights = weights.astype(np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ValueError(
            f"class_weight must be positive and finite, got {weights}. A class with weight 0 "
            "was not trained on, so its posterior cannot be recovered."
        )
    return weights


def focal_posterior_correction(
    proba: ArrayLike, *, gamma: float, class_weight: ArrayLike | None = None
) -> np.ndarray:
    """Recover class posteriors from a model trained with focal loss and class weights.

    A model that minimizes the class-weighted focal risk predicts ``q = Psi^{-1}(p')``, where
    ``p'_k ~ w_k p_k`` is the class posterior under the prior shift the weights cause. This
    function inverts both distortions in closed form: ``p' = Psi(q)``, then
    ``p_k ~ p'_k / w_k``.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        Probabilities predicted by the focal-trained model, rows summing to 1 and values in
        [0, 1], both within 1e-6 (rows are then renormalized). A binary model passes both
        columns, as ``predict_proba`` returns them.
    gamma : float
        Focusing parameter the model was trained with, finite and ``>= 0``. With
        ``gamma=0`` (cross-entropy) only the class weights are undone.
    class_weight : array-like of shape (n_classes,), default=None
        Positive finite weight of each class (column order) in the training risk, for
        example the balanced weights ``n / (n_classes * n_k)``. None means all equal.

    Returns
    -------
    posterior : ndarray of float64 of shape (n_samples, n_classes)
        Corrected class posteriors; rows sum to 1 and the correction by ``gamma`` alone
        keeps each row's argmax.

    Raises
    ------
    ValueError
        If an argument is invalid; the message says which rule was broken.

    Notes
    -----
    With ``h(v) = v / ((1 - v)**gamma - gamma * (1 - v)**(gamma - 1) * v * log(v))``, which
    is strictly increasing on (0, 1), ``Psi_k(q) = h(q_k) / sum_j h(q_j)``. Probabilities
    are clipped into ``[1e-12, 1 - 1e-12]`` before ``h`` is applied.

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal Loss for Dense
       Object Detection", ICCV 2017.
    .. [2] N. Charoenphakdee, J. Vongkulbhisal, N. Chairatanakul and M. Sugiyama, "On Focal
       Loss for Class-Posterior Probability Estimation: A Theoretical Perspective",
       CVPR 2021.

    Examples
    --------
    A focal model (``gamma=2``) trained where ``P(y=1 | x) = 0.9`` predicts about 0.6942:

    >>> import numpy as np
    >>> from skcfe._posterior import focal_posterior_correction
    >>> q = np.array([[0.3058, 0.6942]])
    >>> np.round(focal_posterior_correction(q, gamma=2.0), 4)
    array([[0.1, 0.9]])

    Balanced class weights on a 10% minority move the cross-entropy minimizer to 0.5:

    >>> np.round(focal_posterior_correction([[0.5, 0.5]], gamma=0.0,
    ...                                     class_weight=[1 / 1.8, 5.0]), 4)
    array([[0.9, 0.1]])
    """
    gamma = _check_gamma(gamma)
    proba = _check_proba(proba)
    if class_weight is not None:
        class_weight = _check_class_weight(class_weight, proba.shape[1])
    posterior = _psi(proba, gamma)
    if class_weight is None:
        return posterior
    posterior = posterior / class_weight
    return posterior / posterior.sum(axis=1, keepdims=True)
