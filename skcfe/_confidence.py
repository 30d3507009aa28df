"""Confidence strategies: how much each entry of the probability matrix counts.

Columns of R follow one layout everywhere in skcfe: binary problems have one
column per base estimator (its probability of the positive class); problems
with K > 2 classes have K columns per estimator, column ``j * K + k`` holding
estimator ``j``'s probability of class ``k``.

A strategy is split in two steps so that prediction never sees labels:
``fit_confidence`` returns the confidence used to factorize the training rows
(it may look at labels) and a small state; ``apply_confidence`` computes the
label-free confidence of any rows from that state. New rows, and the training
rows when the aggregator's features are computed, always get the label-free
confidence, because that is all a new row can have.
"""

import numpy as np

CONFIDENCE_STRATEGIES = ("uniform", "certainty", "label_aware", "calibration", "agreement")

# Every observed entry keeps some weight: a probability of exactly 1/K is still
# information (the classifier is unsure), and an all-zero row would leave its
# factors undetermined.
_FLOOR = 0.05


def label_targets(y, n_classes, n_estimators, labeled=None):
    """One-hot labels laid out like the columns of R.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Encoded labels in ``0 .. n_classes - 1``.
    n_classes : int
    n_estimators : int
    labeled : ndarray of bool, shape (n_samples,), default=None
        Rows whose targets are kept; the others are all zero (default: every row).

    Returns
    -------
    T : ndarray of shape (n_samples, n_columns)
        ``T[i, u] = 1`` when column ``u`` is the probability of ``y[i]``.
        Binary problems get a read-only view that repeats one column, so
        ``T`` costs one value per row however many estimators there are.
    """
    if n_classes == 2:
        positive = y if labeled is None else y * labeled
        return np.broadcast_to(positive[:, None].astype(float), (len(y), n_estimators))
    onehot = y[:, None] == np.arange(n_classes)
    if labeled is not None:
        onehot &= labeled[:, None]
    return np.tile(onehot.astype(float), n_estimators)


def reads_labels(state):
    """Whether a strategy's training confidence reads the labels.

    Only then does it differ from the label-free confidence of the same rows.
    """
    return state["strategy"] == "label_aware"


def agreement_with_labels(R, T):
    """Probability each column gives to the observed label (1 - |T - R|)."""
    return T * R + (1.0 - T) * (1.0 - R)


def certainty(R, n_classes):
    """Distance of each entry from the uninformative probability 1/K, in [floor, 1]."""
    uninformative = 0.5 if n_classes == 2 else 1.0 / n_classes
    spread = np.abs(R - uninformative) / max(uninformative, 1.0 - uninformative)
    return _FLOOR + (1.0 - _FLOOR) * spread


def agreement(R, n_classes):
    """Closeness of each entry to the other estimators' mean for the same class."""
    n_columns = R.shape[1]
    per_class = 1 if n_classes == 2 else n_classes
    grouped = R.reshape(R.shape[0], n_columns // per_class, per_class)
    consensus = grouped.mean(axis=1, keepdims=True)
    closeness = 1.0 - np.abs(grouped - consensus)
    return (_FLOOR + (1.0 - _FLOOR) * closeness).reshape(R.shape)


def calibration_weights(R, T, sample_weight, observed=None):
    """Per-column ``1 - Brier score`` on labeled rows (observed entries only), in [floor, 1]."""
    weights = sample_weight[:, None] * (1.0 if observed is None else observed)
    brier = np.sum(weights * (T - R) ** 2, axis=0) / np.maximum(weights.sum(axis=0), 1e-300)
    return _FLOOR + (1.0 - _FLOOR) * (1.0 - brier)


def fit_confidence(strategy, R, T, labeled, sample_weight, *, n_classes, label_aware_alpha,
                   observed=None):
    """Confidence of the training rows for the factorization.

    Parameters
    ----------
    strategy : str or callable
        One of :data:`CONFIDENCE_STRATEGIES`, or ``callable(R) -> C``.
    R : ndarray of shape (n_samples, n_columns)
    T : ndarray of shape (n_samples, n_columns)
        :func:`label_targets` of the labels (rows that are unlabeled are ignored).
    labeled : ndarray of bool, shape (n_samples,)
    sample_weight : ndarray of shape (n_samples,)
    n_classes : int
    label_aware_alpha : float
    observed : ndarray of bool, shape (n_samples, n_columns), default=None
        Entries that hold a prediction ('calibration' scores these only).

    Returns
    -------
    C : ndarray of shape (n_samples, n_columns)
        Non-negative confidence of the training rows.
    state : dict
        What :func:`apply_confidence` needs to compute the label-free
        confidence of any rows.
    """
    state = {"strategy": strategy, "n_classes": n_classes}
    if strategy == "calibration":
        if not labeled.any() or sample_weight[labeled].sum() <= 0:
            raise ValueError("confidence='calibration' needs labeled rows with positive weight.")
        state["column_weights"] = calibration_weights(
            R[labeled], T[labeled], sample_weight[labeled],
            None if observed is None else observed[labeled],
        )
    C = apply_confidence(state, R)
    if strategy == "label_aware":
        # Entries whose estimator gives the observed label the larger share
        # count (1 + alpha) times more: what the estimators got right shapes
        # the classifier factors more than what they got wrong.
        right = agreement_with_labels(R, T) > 0.5
        C = np.where(right & labeled[:, None], C * (1.0 + label_aware_alpha), C)
    return C, state


def apply_confidence(state, R):
    """Label-free confidence of rows ``R`` under a fitted strategy state."""
    strategy = state["strategy"]
    n_classes = state["n_classes"]
    if callable(strategy):
        return _call_user_strategy(strategy, R)
    if strategy == "uniform":
        return np.ones_like(R)
    if strategy in ("certainty", "label_aware"):
        return certainty(R, n_classes)
    if strategy == "agreement":
        return agreement(R, n_classes)
    if strategy == "calibration":
        return np.broadcast_to(state["column_weights"], R.shape).copy()
    raise ValueError(  # pragma: no cover - guarded by parameter validation
        f"Unknown confidence strategy {strategy!r}."
    )


def _call_user_strategy(strategy, R):
    C = np.asarray(strategy(R.copy()), dtype=float)
    name = getattr(strategy, "__name__", repr(strategy))
    if C.shape != R.shape:
        raise ValueError(
            f"The confidence callable {name} returned shape {C.shape}; it must return "
            f"one non-negative weight per entry of the probability matrix, shape {R.shape}."
        )
    if not np.all(np.isfinite(C)) or np.any(C < 0):
        raise ValueError(
            f"The confidence callable {name} returned negative or non-finite values; "
            "confidences must be finite and >= 0."
        )
    return C
