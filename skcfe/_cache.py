"""The ``memory`` cache of the base layer (Pipeline's convention).

The out-of-fold matrix and the refit base estimators depend only on the base
estimators (their parameters), the training data, the folds and the sample
weights, never on the combiner's parameters. Caching them with
:class:`joblib.Memory` lets a search over ``focal_gamma``,
``aggregator_alpha``, ``combiner`` and the rest fit the base layer once per
outer fold.
"""

from sklearn.utils.validation import check_memory

from ._matrix import fit_estimators, oof_matrix


def base_layer(named_estimators, X, y, splits, sample_weight, *, n_classes, n_jobs, verbose):
    """Out-of-fold matrix of the rows and the base estimators refit on all of them.

    Parameters
    ----------
    named_estimators : list of (str, estimator)
        Unfitted base estimators ('drop' already removed).
    X : array-like of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Encoded labels ``0 .. n_classes - 1``.
    splits : list of (train, test) index arrays
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    R : ndarray of shape (n_samples, n_columns)
    estimators : list of fitted estimators
    """
    R = oof_matrix(named_estimators, X, y, splits, sample_weight,
                   n_classes=n_classes, n_jobs=n_jobs, verbose=verbose)
    return R, fit_estimators(named_estimators, X, y, sample_weight, n_jobs=n_jobs)


def cached_base_layer(memory, *args, **kwargs):
    """:func:`base_layer` through ``memory`` (None, a path or a joblib.Memory).

    The key is every argument but ``n_jobs`` and ``verbose``: the estimators'
    parameters (they are hashed as pickles, seeds included), X, y, the folds
    and the sample weights.
    """
    memory = check_memory(memory)
    return memory.cache(base_layer, ignore=["n_jobs", "verbose"])(*args, **kwargs)
