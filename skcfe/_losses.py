r"""Focal loss (Lin et al. 2017) and its exact gradient with respect to the logits.

The focal loss of a sample whose true class has predicted probability ``p_t`` is

.. math:: FL_\gamma(p_t) = -(1 - p_t)^\gamma \log p_t,

and ``gamma = 0`` gives the cross-entropy. Writing ``u = 1 - p_t``, its derivative
with respect to the logits is ``G * (onehot(y) - p)`` (softmax) or ``G * (y - sigmoid(z))``
(a single binary logit), with

.. math:: G = \gamma u^{\gamma - 1} p_t \log p_t - u^\gamma
            = -u^\gamma \left(1 - \gamma \frac{p_t \log p_t}{u}\right) \le 0.

The modulating factor ``u^gamma`` is differentiated too; multiplying the cross-entropy
gradient by a constant ``u^gamma`` would minimize a different loss.
"""

import numbers

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, log_expit

__all__ = ["focal_loss", "focal_loss_gradient"]


def _xlogx_over_u(p, log_p, u):
    """Return ``p * log(p) / (1 - p)`` given ``p``, ``log p`` and ``u = 1 - p``.

    The ratio tends to -1 as ``u -> 0``; the limit is used where ``u == 0`` exactly, so
    that a confident correct prediction gives no 0/0.

    Parameters
    ----------
    p, log_p, u : ndarray of float64
        Probabilities, their logarithms and their complements, all of the same shape.
        ``log_p`` must be accurate where ``u`` is small (for example ``log1p(-u)``).

    Returns
    -------
    ratio : ndarray of float64, in [-1, 0]
    """
    return np.divide(p * log_p, u, out=np.full_like(u, -1.0), where=u > 0)


def _loss_and_factor(p_t, log_pt, u, gamma):
    """Return the focal loss and ``-G = u**gamma * (1 - gamma * p_t log(p_t) / u) >= 0``.

    ``-G`` is written with ``u**gamma`` rather than ``u**(gamma - 1)`` (see the module
    docstring) so that it stays finite as ``u -> 0`` for ``gamma`` in (0, 1), where
    ``u**(gamma - 1)`` diverges.

    Parameters
    ----------
    p_t, log_pt, u : ndarray of float64 of shape (n_samples,)
        Probability of the true class, its logarithm (accurate where ``u`` is small) and
        ``u = 1 - p_t`` (accurate where ``p_t`` is close to 1).
    gamma : float
        Focusing parameter, ``>= 0``.

    Returns
    -------
    loss : ndarray of float64 of shape (n_samples,)
    factor : ndarray of float64 of shape (n_samples,)
    """
    modulating = u**gamma
    ratio = _xlogx_over_u(p_t, log_pt, u)
    return -modulating * log_pt, modulating * (1.0 - gamma * ratio)


def _focal_terms(y, raw, gamma):
    """Per-sample focal loss and its gradient with respect to the logits.

    No validation: this is the hot path of the solvers, which validate once.

    Parameters
    ----------
    y : ndarray of int of shape (n_samples,)
        Encoded classes in ``0..K-1`` (in ``{0, 1}`` when ``raw`` is 1-D).
    raw : ndarray of float64 of shape (n_samples,) or (n_samples, K)
        A single binary logit (``P(y=1) = sigmoid(raw)``) or K softmax logits per sample.
    gamma : float
        Focusing parameter, ``>= 0``; 0 gives the cross-entropy.

    Returns
    -------
    loss : ndarray of float64 of shape (n_samples,)
        Unweighted focal loss of each sample, ``>= 0``.
    grad : ndarray of float64 of the shape of ``raw``
        Gradient of each sample's loss with respect to its own logits.

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal Loss for Dense
       Object Detection", ICCV 2017.
    """
    if raw.ndim == 1:
        # Sign-flip the logit so that both labels become "the true class has logit z_t";
        # expit(-z_t) gives 1 - p_t without the cancellation of 1 - expit(z_t).
        sign = np.where(y == 1, 1.0, -1.0)
        z_t = sign * raw
        log_pt = log_expit(z_t)
        p_t = expit(z_t)
        u = expit(-z_t)
        loss, factor = _loss_and_factor(p_t, log_pt, u, gamma)
        return loss, -factor * sign * u

    rows = np.arange(raw.shape[0])
    shifted = raw - raw.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1)
    proba = exp / total[:, None]
    # Summing the other classes keeps u accurate when p_t is close to 1; 1 - p_t would not.
    others = exp.copy()
    others[rows, y] = 0.0
    u = others.sum(axis=1) / total
    p_t = proba[rows, y]
    # log-softmax loses relative accuracy as p_t -> 1 (log p_t ~ -u), log1p(-u) does not.
    log_pt = np.where(u < 0.5, np.log1p(-np.minimum(u, 0.5)), shifted[rows, y] - np.log(total))
    loss, factor = _loss_and_factor(p_t, log_pt, u, gamma)
    grad = factor[:, None] * proba
    grad[rows, y] = -factor * u
    return loss, grad


def _check_gamma(gamma):
    """Validate the focusing parameter and return it as a float.

    Parameters
    ----------
    gamma : object
        Candidate focusing parameter.

    Returns
    -------
    gamma : float

    Raises
    ------
    ValueError
        If ``gamma`` is not a finite real number ``>= 0``.
    """
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise ValueError(
            f"gamma must be a real number >= 0, got {gamma!r} of type {type(gamma).__name__}. "
            "Pass a float such as gamma=2.0 (gamma=0 gives the cross-entropy)."
        )
    gamma = float(gamma)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(
            f"gamma must be finite and >= 0, got gamma={gamma!r}. "
            "Typical values are 0 (cross-entropy) to 5."
        )
    return gamma


def _check_focal_inputs(y_true, raw_prediction, gamma, sample_weight):
    """Validate the arguments of :func:`focal_loss` and :func:`focal_loss_gradient`.

    Parameters
    ----------
    y_true, raw_prediction, gamma, sample_weight
        See :func:`focal_loss`.

    Returns
    -------
    y : ndarray of intp of shape (n_samples,)
    raw : ndarray of float64 of shape (n_samples,) or (n_samples, K)
    gamma : float
    sample_weight : ndarray of float64 of shape (n_samples,)
        Ones when ``sample_weight`` is None.

    Raises
    ------
    ValueError
        With a message that says what is wrong and how to fix it.
    """
    gamma = _check_gamma(gamma)

    raw = np.asarray(raw_prediction)
    if raw.dtype.kind not in "biuf":
        raise ValueError(
            f"raw_prediction must be real-valued logits, got an array of dtype {raw.dtype}. "
            "Pass the model's decision values (logits), not labels or probabilities as strings."
        )
    raw = raw.astype(np.float64, copy=False)
    if raw.ndim not in (1, 2):
        raise ValueError(
            f"raw_prediction must be 1-D (one binary logit per sample) or 2-D (n_samples, "
            f"n_classes), got an array with {raw.ndim} dimensions and shape {raw.shape}."
        )
    if raw.ndim == 2 and raw.shape[1] < 2:
        raise ValueError(
            f"2-D raw_prediction must have at least 2 columns (one logit per class), got shape "
            f"{raw.shape}. For a binary problem pass the single logit as a 1-D array."
        )
    n_samples = raw.shape[0]
    if n_samples == 0:
        raise ValueError("raw_prediction has 0 samples; the focal loss needs at least one.")
    if not np.all(np.isfinite(raw)):
        raise ValueError(
            "raw_prediction contains NaN or infinite values; the logits must all be finite. "
            "Check the model that produced them (for example a diverged optimizer)."
        )

    y = np.asarray(y_true)
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"y_true must hold integer-encoded classes, got dtype {y.dtype}. "
            "Encode the labels first, for example with sklearn.preprocessing.LabelEncoder."
        )
    if y.ndim != 1:
        raise ValueError(
            f"y_true must be 1-D, got shape {y.shape}. Use y_true.ravel() for a column vector."
        )
    if y.shape[0] != n_samples:
        raise ValueError(
            f"y_true and raw_prediction have different lengths ({y.shape[0]} and {n_samples}); "
            "pass one label per row of raw_prediction."
        )
    n_classes = 2 if raw.ndim == 1 else raw.shape[1]
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        raise ValueError(
            "y_true must hold integer class indices; found non-integer or non-finite values. "
            "Encode the labels first, for example with sklearn.preprocessing.LabelEncoder."
        )
    if np.any(y < 0) or np.any(y >= n_classes):
        expected = "0 or 1 for a 1-D (binary) raw_prediction" if raw.ndim == 1 else (
            f"in 0..{n_classes - 1} for raw_prediction with {n_classes} columns"
        )
        raise ValueError(
            f"y_true must be {expected}; found values from {y.min()} to {y.max()}. "
            "Encode the labels with sklearn.preprocessing.LabelEncoder."
        )
    y = y.astype(np.intp)

    if sample_weight is None:
        return y, raw, gamma, np.ones(n_samples)
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric, got dtype {sw.dtype}.")
    # A scalar weighs every sample equally, as in scikit-learn.
    sw = np.full(n_samples, sw, dtype=np.float64) if sw.ndim == 0 else sw.astype(np.float64)
    if sw.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match raw_prediction, got "
            f"{sw.shape}."
        )
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    if not np.any(sw > 0):
        raise ValueError(
            "sample_weight is zero for every sample, so the weighted mean is undefined; "
            "give at least one sample a positive weight."
        )
    return y, raw, gamma, sw


def focal_loss(
    y_true: ArrayLike,
    raw_prediction: ArrayLike,
    *,
    gamma: float = 2.0,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Weighted mean focal loss of logits.

    ``sum_i s_i FL_gamma(p_i, y_i) / sum_i s_i`` with ``FL_gamma(p, y) = -(1 - p_y)^gamma
    log p_y`` and ``p`` the sigmoid (1-D ``raw_prediction``) or softmax (2-D) of the logits.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer-encoded classes: 0 or 1 when ``raw_prediction`` is 1-D, otherwise in
        ``0..n_classes-1``.
    raw_prediction : array-like of shape (n_samples,) or (n_samples, n_classes)
        Finite logits: one binary logit per sample (``P(y=1) = sigmoid(raw)``), or
        ``n_classes >= 2`` softmax logits.
    gamma : float, default=2.0
        Focusing parameter, finite and ``>= 0``. ``gamma=0`` gives the cross-entropy.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative finite weights, not all zero. None weighs every sample equally.

    Returns
    -------
    loss : float
        The weighted mean focal loss, ``>= 0``.

    Raises
    ------
    ValueError
        If an argument is invalid; the message says which rule was broken.

    See Also
    --------
    focal_loss_gradient : Its gradient with respect to ``raw_prediction``.

    Notes
    -----
    Computed from log-sigmoid / log-softmax, so logits as large as ``+-1e3`` give finite
    results.

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal Loss for Dense
       Object Detection", ICCV 2017.

    Examples
    --------
    >>> from skcfe._losses import focal_loss
    >>> round(focal_loss([1, 0], [0.0, 0.0], gamma=0.0), 6)  # log(2)
    0.693147
    >>> round(focal_loss([1, 0], [0.0, 0.0], gamma=2.0), 6)  # log(2) / 4
    0.173287
    """
    y, raw, gamma, sw = _check_focal_inputs(y_true, raw_prediction, gamma, sample_weight)
    loss, _ = _focal_terms(y, raw, gamma)
    return float(sw @ loss / sw.sum())


def focal_loss_gradient(
    y_true: ArrayLike,
    raw_prediction: ArrayLike,
    *,
    gamma: float = 2.0,
    sample_weight: ArrayLike | None = None,
) -> np.ndarray:
    """Exact gradient of :func:`focal_loss` with respect to ``raw_prediction``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer-encoded classes: 0 or 1 when ``raw_prediction`` is 1-D, otherwise in
        ``0..n_classes-1``.
    raw_prediction : array-like of shape (n_samples,) or (n_samples, n_classes)
        Finite logits: one binary logit per sample (``P(y=1) = sigmoid(raw)``), or
        ``n_classes >= 2`` softmax logits.
    gamma : float, default=2.0
        Focusing parameter, finite and ``>= 0``. ``gamma=0`` gives the cross-entropy.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative finite weights, not all zero. None weighs every sample equally.

    Returns
    -------
    grad : ndarray of float64 of the shape of ``raw_prediction``
        Derivative of the weighted mean loss with respect to each logit.

    Raises
    ------
    ValueError
        If an argument is invalid; the message says which rule was broken.

    See Also
    --------
    focal_loss : The loss itself.

    Notes
    -----
    With ``p_t`` the probability of the true class and ``u = 1 - p_t``, a sample's gradient
    is ``G * (onehot(y) - p)`` (softmax) or ``G * (y - sigmoid(z))`` (binary logit), where
    ``G = gamma * u**(gamma - 1) * p_t * log(p_t) - u**gamma``. The modulating factor is
    differentiated too: this is not the cross-entropy gradient times ``u**gamma``.

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal Loss for Dense
       Object Detection", ICCV 2017.

    Examples
    --------
    >>> from skcfe._losses import focal_loss_gradient
    >>> focal_loss_gradient([1], [0.0], gamma=0.0)  # sigmoid(0) - 1
    array([-0.5])
    """
    y, raw, gamma, sw = _check_focal_inputs(y_true, raw_prediction, gamma, sample_weight)
    _, grad = _focal_terms(y, raw, gamma)
    weights = sw / sw.sum()
    return grad * (weights if raw.ndim == 1 else weights[:, None])
