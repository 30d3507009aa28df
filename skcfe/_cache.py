"""The ``memory`` cache of the base layer (Pipeline's convention).

The out-of-fold matrix and the refit base estimators depend only on the base
estimators (their parameters and metadata requests), the training data, the
folds, and the metadata routed to the base estimators' ``fit`` (sample
weights and any other), never on the combiner's parameters. Caching them
with :class:`joblib.Memory` lets a search over ``focal_gamma``,
``aggregator_alpha``, ``combiner`` and the rest fit the base layer once per
outer fold.
"""

from sklearn.utils.validation import check_memory

from ._matrix import fit_base_layer


def base_layer(named_estimators, X, y, splits, fit_params, *, n_classes, n_jobs, verbose,
               classes=None):
    """Out-of-fold matrix of the rows and the base estimators refit on all of them.

    The arguments are :func:`~skcfe._matrix.fit_base_layer`'s; returns ``(R,
    estimators)``, the matrix and the fitted base estimators.
    """
    return fit_base_layer(named_estimators, X, y, splits, fit_params, n_classes=n_classes,
                          n_jobs=n_jobs, verbose=verbose, classes=classes)


def cached_base_layer(memory, *args, **kwargs):
    """:func:`base_layer` through ``memory`` (None, a path or a joblib.Memory).

    The key is every argument but ``n_jobs`` and ``verbose``: the estimators'
    parameters (they are hashed as pickles, seeds and metadata requests
    included), X, y, the folds (``groups`` enter through the folds they
    make) and the routed fit parameters of each base estimator.
    """
    memory = check_memory(memory)
    return memory.cache(base_layer, ignore=["n_jobs", "verbose"])(*args, **kwargs)
