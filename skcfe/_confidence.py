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

A fit does not hold the (n, q) confidence arrays: :class:`RowConfidence`
computes the confidence of any rows from R when the backend indexes it, bit
for bit the rows of the whole array (every strategy is entrywise or per
row, given its fitted state). A confidence callable may use the whole
matrix, so it is called once on all of R and its result is held.
"""

import numpy as np

from ._threads import reduction_rows, row_slices

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
    # In place: the same values as _FLOOR + (1 - _FLOOR) * |R - 1/K| / max(...)
    # with one temporary instead of four.
    C = np.subtract(R, uninformative)
    np.abs(C, out=C)
    C /= max(uninformative, 1.0 - uninformative)
    C *= 1.0 - _FLOOR
    C += _FLOOR
    return C


def agreement(R, n_classes):
    """Closeness of each entry to the other estimators' mean for the same class."""
    n_columns = R.shape[1]
    per_class = 1 if n_classes == 2 else n_classes
    grouped = R.reshape(R.shape[0], n_columns // per_class, per_class)
    consensus = grouped.mean(axis=1, keepdims=True)
    closeness = 1.0 - np.abs(grouped - consensus)
    return (_FLOOR + (1.0 - _FLOOR) * closeness).reshape(R.shape)


def calibration_weights(R, T, sample_weight, observed=None, rows=None):
    """Per-column ``1 - Brier score`` on labeled rows (observed entries only), in [floor, 1].

    ``rows`` (a boolean mask, default: every row) selects the rows scored;
    the sums run over blocks of rows, so no (n, q) temporary is whole.
    """
    errors, totals = 0, 0
    for block in row_slices(len(R), reduction_rows(R.shape[1])):
        keep = slice(None) if rows is None else rows[block]
        weights = sample_weight[block][keep][:, None] * (
            1.0 if observed is None else observed[block][keep])
        error = np.sum(weights * (T[block][keep] - R[block][keep]) ** 2, axis=0)
        errors, totals = errors + error, totals + weights.sum(axis=0)
    brier = errors / np.maximum(totals, 1e-300)
    return _FLOOR + (1.0 - _FLOOR) * (1.0 - brier)


def fit_confidence(strategy, R, T, labeled, sample_weight, *, n_classes, label_aware_alpha,
                   observed=None, by_rows=False):
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
    by_rows : bool, default=False
        Return a :class:`RowConfidence` that computes the confidence of any
        rows on demand (zero on the entries that ``observed`` marks missing)
        instead of the whole array. A callable strategy, which may read the
        whole matrix (column statistics), is called once on all of R as
        always; its result, times ``observed``, is returned as an array.

    Returns
    -------
    C : ndarray of shape (n_samples, n_columns), or RowConfidence
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
            R, T, sample_weight, observed, rows=None if labeled.all() else labeled,
        )
    if by_rows:
        if callable(strategy):
            C = apply_confidence(state, R)
            return (C if observed is None else C * observed), state
        return RowConfidence(state, R, T=T, labeled=labeled, alpha=label_aware_alpha,
                             observed=observed), state
    C = apply_confidence(state, R)
    if strategy == "label_aware":
        # Entries whose estimator gives the observed label the larger share
        # count (1 + alpha) times more: what the estimators got right shapes
        # the classifier factors more than what they got wrong.
        right = agreement_with_labels(R, T) > 0.5
        C = np.where(right & labeled[:, None], C * (1.0 + label_aware_alpha), C)
    return C, state


class RowConfidence:
    """The confidence of the rows of R, computed from R on demand: ``C[rows]``.

    Stands in for the (n, q) confidence array in a fit, which then never
    holds it (each array as large as R costs as much memory as R). Rows are
    a slice, an index array or a boolean mask, optionally followed by a
    column index (``C[rows, cols]``); ``np.asarray(C)`` materializes the whole
    array. Each entry is computed exactly as the whole array computes it
    (the strategies are entrywise or per row), so ``C[rows]`` equals
    ``np.asarray(C)[rows]`` bit for bit.

    Parameters
    ----------
    state : dict
        A :func:`fit_confidence` state of a named strategy (not a callable).
    R : ndarray of shape (n_samples, n_columns)
        Probabilities (missing entries already filled).
    T, labeled : ndarray, default=None
        :func:`label_targets` and the labeled rows: given, a 'label_aware'
        strategy boosts the entries that agree with the label (the training
        confidence); without them every strategy is label-free.
    alpha : float, default=0.0
        ``label_aware_alpha``.
    observed : ndarray of bool, shape (n_samples, n_columns), default=None
        Entries that hold a prediction; the others get zero confidence.
    """

    def __init__(self, state, R, *, T=None, labeled=None, alpha=0.0, observed=None):
        if callable(state["strategy"]):
            raise TypeError("A confidence callable is applied to the whole matrix, not by rows.")
        self.state, self.R, self.observed = state, R, observed
        self.boost = None
        if labeled is not None and reads_labels(state):
            self.boost = (T, labeled, 1.0 + alpha)

    @property
    def shape(self):
        return self.R.shape

    @property
    def ndim(self):
        return 2

    dtype = np.dtype(np.float64)

    def __len__(self):
        return len(self.R)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            rows, columns = index[0], index[1:]
            return self[rows][(slice(None),) + columns]
        R = self.R[index]
        C = apply_confidence(self.state, R)
        if self.boost is not None:
            T, labeled, factor = self.boost
            right = agreement_with_labels(R, T[index]) > 0.5
            C = np.where(right & labeled[index][:, None], C * factor, C)
        if self.observed is not None:
            C = C * self.observed[index]
        return C

    def __array__(self, dtype=None, copy=None):
        C = self[:]
        return C if dtype is None else C.astype(dtype, copy=False)


def weighted_total(C, row_weight):
    """``sum_i w_i sum_u c_iu`` of a confidence array or :class:`RowConfidence`.

    Summed over blocks of rows (:func:`~skcfe._threads.reduction_rows`),
    so no (n, q) temporary is whole; a matrix of one block gives exactly
    ``np.dot(row_weight, C.sum(axis=1))``.
    """
    total = None
    for rows in row_slices(len(row_weight), reduction_rows(C.shape[1])):
        part = np.dot(row_weight[rows], C[rows].sum(axis=1))
        total = part if total is None else total + part
    return total


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
