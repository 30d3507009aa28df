"""Input validation of the estimators: base estimators, targets, weights, precomputed matrices.

Pure functions that raise a ValueError (or TypeError) naming what was wrong
and how to fix it; the estimators call them at the start of ``fit`` and
``predict``.
"""

from numbers import Number

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    column_or_1d,
)

from ._matrix import stack_method


def is_named_list(items):
    """Whether ``items`` is a non-empty list of (str, object) pairs."""
    return len(items) > 0 and all(
        isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
        for item in items
    )


def check_estimators(estimators):
    """Check a list of (name, estimator) base estimators (names are the ensemble's to check)."""
    if not is_named_list(estimators):
        raise ValueError(
            "Invalid 'estimators': expected a non-empty list of (name, estimator) "
            "tuples, or None for the default set."
        )
    if all(isinstance(est, str) and est == "drop" for _, est in estimators):
        raise ValueError(
            "All estimators are dropped. At least one is required to be an estimator."
        )
    for name, est in estimators:
        if isinstance(est, str) and est == "drop":
            continue
        if est is None or isinstance(est, str):
            raise ValueError(
                f"Base estimator {name!r} is {est!r}; each entry of 'estimators' must be "
                "an estimator, or 'drop' to leave it out."
            )
        if not hasattr(est, "fit") or not hasattr(est, "get_params"):
            raise ValueError(
                f"Base estimator {name!r} ({type(est).__name__}) is not a scikit-learn "
                "estimator: it needs fit, get_params and predict_proba or "
                "decision_function."
            )
        if not is_classifier(est):
            raise ValueError(
                f"Base estimator {name!r} ({type(est).__name__}) is not a classifier; "
                "skcfe combines classifiers' predicted probabilities. Use a classifier "
                "(e.g. RidgeClassifier instead of Ridge), or drop it."
            )
        # predict_proba, else decision_function (calibrated out of fold); else an error.
        stack_method(name, est)


def check_targets(X, y, sample_weight, unlabeled_label, owner):
    """Validate y and sample_weight of ``owner`` (the estimator's class name).

    Returns ``(y_encoded, labeled, weights, label_encoder)``.
    """
    if _num_samples(X) == 0:
        raise ValueError("Found array with 0 sample(s); fit needs at least one row per class.")
    shape = np.asarray(y).shape
    if len(shape) == 2 and shape[1] > 1:
        raise ValueError(
            f"y has shape {shape}: multilabel and multi-output targets are not "
            f"supported; {owner} needs one class label per row. Fit one "
            "model per output (sklearn.multioutput.MultiOutputClassifier) instead."
        )
    y = column_or_1d(y, warn=True)
    check_marker_type(y, unlabeled_label)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(
            "Input y contains NaN or infinity. Every row needs a finite label; to "
            "use rows without a label, give them a marker value and set "
            "unlabeled_label to it (e.g. unlabeled_label=-1)."
        )
    n_samples = _num_samples(X)
    check_row_aligned("y", y, n_samples)
    if sample_weight is not None and not isinstance(sample_weight, Number):
        # A scalar is accepted as scikit-learn's _check_sample_weight accepts it:
        # the same weight for every row.
        check_row_aligned("sample_weight", sample_weight, n_samples)
    if type_of_target(y) == "continuous":
        raise ValueError(
            f"Unknown label type: continuous. {owner} combines "
            "classifiers; y must hold class labels (integers or strings), not "
            "continuous values."
        )
    check_classification_targets(y)

    labeled = labeled_mask(y, unlabeled_label)
    if not labeled.any():
        raise ValueError(
            f"Every row is unlabeled (y == {unlabeled_label!r}); at least "
            "two classes of labeled rows are needed."
        )
    label_encoder = LabelEncoder().fit(y[labeled])
    classes = label_encoder.classes_
    if len(classes) < 2:
        only = classes[0]
        only = only.item() if isinstance(only, np.generic) else only
        besides = (
            "" if unlabeled_label is None
            else f" besides the unlabeled rows (y == {unlabeled_label!r})"
        )
        raise ValueError(
            f"{owner} needs labeled rows of at least 2 classes; "
            f"got only one class: {only!r}{besides}."
        )
    y_encoded = np.zeros(len(y), dtype=np.intp)
    y_encoded[labeled] = label_encoder.transform(y[labeled])

    weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    if weights[labeled].sum() <= 0:
        raise ValueError(
            "sample_weight is zero on every labeled row; at least one labeled "
            "row needs a positive weight."
        )
    return y_encoded, labeled, weights, label_encoder


def check_row_aligned(name, values, n_samples):
    """``values`` (y, sample_weight, groups) must hold one entry per row of X."""
    try:
        n_values = _num_samples(values)
    except TypeError as exc:
        raise ValueError(
            f"{name} must be an array-like of shape (n_samples,) = ({n_samples},), one "
            f"entry per row of X; got {type(values).__name__} {values!r:.40}."
        ) from exc
    if n_values != n_samples:
        raise ValueError(
            f"{name} has {n_values} entries but X has {n_samples} rows; {name} needs one "
            "entry per row of X."
        )


def labeled_mask(y, unlabeled_label):
    """True for rows with a label (every row when ``unlabeled_label`` is None)."""
    if unlabeled_label is None:
        return np.ones(len(y), dtype=bool)
    return np.asarray(y != unlabeled_label, dtype=bool)


def indexable(X):
    """X in a form cross-validation can index, without touching its values.

    Sparse formats that cannot be sliced by rows (COO, DOK, ...) become CSR,
    as scikit-learn's own estimators convert them; array-likes that support
    no indexing at all become arrays (as :func:`sklearn.utils.indexable` does).
    """
    if sp.issparse(X):
        return X if X.format in ("csr", "csc") else X.tocsr()
    if hasattr(X, "__getitem__") or hasattr(X, "iloc"):
        return X
    return np.asarray(X)


def check_marker_type(y, marker):
    """Labels of one type, and ``unlabeled_label`` able to equal a label (a string for
    string labels)."""
    if y.dtype.kind in "biuf":
        labels_are_strings = False
    elif y.dtype.kind in "US":
        labels_are_strings = True
    else:
        kinds = {isinstance(v, str) for v in y}
        if len(kinds) > 1:
            marker_hint = "" if marker is None else f" (and for unlabeled_label={marker!r})"
            raise ValueError(
                "y mixes string and non-string labels; use one type for every label"
                f"{marker_hint}, e.g. y.astype(str)."
            )
        labels_are_strings = kinds == {True}
    if marker is None:
        return
    if isinstance(marker, str) != labels_are_strings:
        y_type = "strings" if labels_are_strings else "numbers"
        raise ValueError(
            f"unlabeled_label={marker!r} is of type {type(marker).__name__} but the labels "
            f"in y are {y_type}, so no row can be marked unlabeled; use a marker of the "
            f"labels' type (e.g. {'-1' if not labels_are_strings else repr('unlabeled')})."
        )


def check_precomputed(X, n_classes):
    """Validate a precomputed probability matrix (``estimators='precomputed'``)."""
    if sp.issparse(X):
        raise TypeError(
            "estimators='precomputed' takes a dense probability matrix; got a sparse "
            "matrix. Convert it with X.toarray()."
        )
    R = np.asarray(X, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(
            f"estimators='precomputed' takes a 2D probability matrix (n_samples, n_models "
            f"* width); got an array of shape {R.shape}."
        )
    if np.isinf(R).any():
        raise ValueError(
            "X holds infinity; with estimators='precomputed' X holds predicted "
            "probabilities in [0, 1] (NaN marks a missing prediction)."
        )
    observed = ~np.isnan(R)
    if observed.any():
        # fmin / fmax skip NaN: the observed entries' extremes without copying them.
        low, high = np.fmin.reduce(R, axis=None), np.fmax.reduce(R, axis=None)
        if low < 0.0 or high > 1.0:
            raise ValueError(
                "With estimators='precomputed', X holds predicted probabilities and must "
                f"lie in [0, 1]; got values in [{low:g}, {high:g}]."
            )
    width = 1 if n_classes == 2 else n_classes
    if R.shape[1] == 0 or R.shape[1] % width:
        layout = (
            "the probability of classes_[1]" if width == 1 else "one per class, grouped by model"
        )
        raise ValueError(
            f"With estimators='precomputed' and {n_classes} classes, X needs {width} "
            f"column(s) per base model ({layout}); got {R.shape[1]} columns."
        )
    empty = np.flatnonzero(~observed.any(axis=1))
    if empty.size:
        raise ValueError(
            f"Row {empty[0]} of X has no prediction at all ({empty.size} such rows): every "
            "row needs at least one base model's probability; drop those rows."
        )
    if width > 1:
        groups = observed.reshape(len(R), -1, width)
        partial = np.argwhere(groups.any(axis=2) & ~groups.all(axis=2))
        if partial.size:
            row, model = partial[0]
            raise ValueError(
                f"Row {row} of X has some but not all of model {model}'s {width} class "
                "probabilities; a model's group of columns must be all present or all "
                "missing (NaN)."
            )
    return R
