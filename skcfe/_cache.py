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

    The arguments are :func:`~skcfe._matrix.oof_matrix`'s; returns ``(R,
    estimators)``, the matrix and the fitted base estimators.
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
