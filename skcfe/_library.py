"""A large, documented library of cheap base estimators (Super-Learner style).

Super Learner libraries hold dozens of models: linear models at several
penalties, kNN at several k, trees, forests and boosting at several depths,
naive Bayes. :func:`model_library` gives such a library in a fixed order,
so that every size is a prefix of the larger ones: the first five are
:func:`default_estimators`, the first 20 add one or two variants of every
family, the 60 cover each family's main hyperparameter. The order is the
contract: a model keeps its name, its parameters and its seed at every size.
"""

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB, GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.metadata_routing import _routing_enabled
from sklearn.utils.validation import has_fit_parameter


def _scaled(estimator):
    return make_pipeline(StandardScaler(), estimator)


def _logistic(C, **kw):
    return _scaled(LogisticRegression(C=C, max_iter=1000, **kw))


def _knn(k, weights="uniform"):
    return _scaled(KNeighborsClassifier(n_neighbors=k, weights=weights))


def _forest(n_estimators=50, **kw):
    return RandomForestClassifier(n_estimators=n_estimators, n_jobs=1, **kw)


def _extra_trees(n_estimators=50, **kw):
    return ExtraTreesClassifier(n_estimators=n_estimators, n_jobs=1, **kw)


def _boosting(**kw):
    # early_stopping=False: the number of iterations is the hyperparameter, and
    # 'auto' would switch early stopping on (with its own split) above 10,000 rows.
    return HistGradientBoostingClassifier(early_stopping=False, **kw)


def _bernoulli_nb(alpha=1.0):
    # binarize=0 after scaling: each feature above or below its mean.
    return _scaled(BernoulliNB(alpha=alpha, binarize=0.0))


# (name, factory, takes a seed). The first five are default_estimators(), in its
# order; 20 and 60 are the documented sizes (every family in both).
_LIBRARY = [
    # == the default set (size 5) ==
    ("logistic", lambda: _logistic(1.0), False),
    ("naive_bayes", GaussianNB, False),
    ("tree", lambda: DecisionTreeClassifier(min_samples_leaf=5), True),
    ("forest", lambda: RandomForestClassifier(n_estimators=100, min_samples_leaf=2), True),
    ("boosting", HistGradientBoostingClassifier, True),
    # == to 20 ==
    ("logistic_C0.01", lambda: _logistic(0.01), False),
    ("logistic_C100", lambda: _logistic(100.0), False),
    ("knn_5", lambda: _knn(5), False),
    ("knn_25", lambda: _knn(25), False),
    ("knn_100_distance", lambda: _knn(100, "distance"), False),
    ("tree_depth3", lambda: DecisionTreeClassifier(max_depth=3), True),
    ("tree_leaf20", lambda: DecisionTreeClassifier(min_samples_leaf=20), True),
    ("forest_depth5", lambda: _forest(max_depth=5), True),
    ("extra_trees", lambda: _extra_trees(100, min_samples_leaf=2), True),
    ("extra_trees_depth8", lambda: _extra_trees(max_depth=8), True),
    ("boosting_depth3", lambda: _boosting(max_depth=3, max_iter=50), True),
    ("boosting_lr0.3_depth2", lambda: _boosting(max_depth=2, learning_rate=0.3, max_iter=30), True),
    ("bernoulli_nb", _bernoulli_nb, False),
    ("lda_shrinkage", lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), False),
    ("qda_reg0.5", lambda: QuadraticDiscriminantAnalysis(reg_param=0.5), False),
    # == to 60 ==
    ("logistic_C0.001", lambda: _logistic(0.001), False),
    ("logistic_C0.1", lambda: _logistic(0.1), False),
    ("logistic_C10", lambda: _logistic(10.0), False),
    ("logistic_balanced", lambda: _logistic(1.0, class_weight="balanced"), False),
    ("knn_3", lambda: _knn(3), False),
    ("knn_10", lambda: _knn(10), False),
    ("knn_50", lambda: _knn(50), False),
    ("knn_15_distance", lambda: _knn(15, "distance"), False),
    ("knn_50_distance", lambda: _knn(50, "distance"), False),
    ("tree_depth2", lambda: DecisionTreeClassifier(max_depth=2), True),
    ("tree_depth5", lambda: DecisionTreeClassifier(max_depth=5), True),
    ("tree_depth8", lambda: DecisionTreeClassifier(max_depth=8), True),
    ("tree_full", DecisionTreeClassifier, True),
    ("tree_leaf50", lambda: DecisionTreeClassifier(min_samples_leaf=50), True),
    ("tree_depth5_entropy", lambda: DecisionTreeClassifier(max_depth=5, criterion="entropy"), True),
    ("forest_depth3", lambda: _forest(max_depth=3), True),
    ("forest_depth10", lambda: _forest(max_depth=10), True),
    ("forest_features0.5", lambda: _forest(max_features=0.5, min_samples_leaf=2), True),
    ("forest_bagging", lambda: _forest(max_features=1.0, min_samples_leaf=2), True),
    ("forest_leaf10", lambda: _forest(min_samples_leaf=10), True),
    ("forest_balanced", lambda: _forest(min_samples_leaf=5, class_weight="balanced_subsample"), True),
    ("extra_trees_depth3", lambda: _extra_trees(max_depth=3), True),
    ("extra_trees_features0.5", lambda: _extra_trees(max_features=0.5, min_samples_leaf=2), True),
    ("extra_trees_features1", lambda: _extra_trees(max_features=1.0, min_samples_leaf=2), True),
    ("extra_trees_leaf10", lambda: _extra_trees(min_samples_leaf=10), True),
    ("extra_trees_leaf1", lambda: _extra_trees(min_samples_leaf=1), True),
    ("boosting_stumps", lambda: _boosting(max_depth=1, learning_rate=0.3, max_iter=50), True),
    ("boosting_depth2", lambda: _boosting(max_depth=2, max_iter=50), True),
    ("boosting_depth6", lambda: _boosting(max_depth=6, max_iter=50), True),
    ("boosting_lr0.05", lambda: _boosting(max_leaf_nodes=15, learning_rate=0.05, max_iter=100), True),
    ("boosting_lr0.5", lambda: _boosting(max_depth=3, learning_rate=0.5, max_iter=20), True),
    ("boosting_l2_leaf50", lambda: _boosting(l2_regularization=1.0, min_samples_leaf=50, max_iter=50), True),
    ("boosting_leaves63", lambda: _boosting(max_leaf_nodes=63, learning_rate=0.05, max_iter=50), True),
    ("naive_bayes_smooth0.01", lambda: GaussianNB(var_smoothing=1e-2), False),
    ("naive_bayes_smooth0.1", lambda: GaussianNB(var_smoothing=1e-1), False),
    ("bernoulli_nb_alpha10", lambda: _bernoulli_nb(10.0), False),
    ("lda", LinearDiscriminantAnalysis, False),
    ("lda_shrinkage0.5", lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.5), False),
    ("qda_reg0.1", lambda: QuadraticDiscriminantAnalysis(reg_param=0.1), False),
    ("qda_reg0.9", lambda: QuadraticDiscriminantAnalysis(reg_param=0.9), False),
]

MAX_LIBRARY_SIZE = len(_LIBRARY)


DEFAULT_ESTIMATOR_NAMES = ("logistic", "naive_bayes", "tree", "forest", "boosting")


def default_estimators(
    random_state: int | np.random.RandomState | None = None,
) -> list[tuple[str, BaseEstimator]]:
    """The diverse default set of base estimators: :func:`model_library`'s first five.

    Linear (scaled logistic regression), generative (Gaussian naive Bayes),
    a single tree, bagging (a random forest) and boosting (histogram
    gradient boosting): their errors differ, which is what a combiner can
    exploit. Every one accepts ``sample_weight``; with metadata routing
    enabled, every one (each step of the logistic pipeline too) requests it,
    so sample weights reach them with routing as without.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        Seeds the randomized estimators, as :func:`model_library` does.

    Returns
    -------
    estimators : list of (str, estimator)
    """
    return model_library(len(DEFAULT_ESTIMATOR_NAMES), random_state=random_state)


@validate_params(
    {
        "size": [Interval(Integral, 1, MAX_LIBRARY_SIZE, closed="both")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def model_library(
    size: int = 20, random_state: int | np.random.RandomState | None = None
) -> list[tuple[str, BaseEstimator]]:
    """A large library of cheap, diverse base estimators (Super-Learner style).

    Hyperparameter variants of every family a Super Learner library holds:
    scaled logistic regression (C from 0.001 to 100, and class-balanced),
    scaled kNN (k from 3 to 100, uniform and distance weights), decision
    trees (depth 2 to unlimited, several leaf sizes), random forests and
    extra-trees (50-100 trees, several depths, ``max_features`` and leaf
    sizes), histogram gradient boosting (stumps to depth 6, learning rates
    0.05-0.5, 20-100 iterations), Gaussian and Bernoulli naive Bayes, and
    regularized linear and quadratic discriminant analysis. Their
    predictions are strongly correlated, which is where a low-rank model of
    the probability matrix is meant to denoise.

    The library has a fixed order and ``size`` takes its first models, so
    libraries are nested: the first 5 are exactly :func:`default_estimators`
    (same names, parameters and seeds); 20 adds one to three variants of
    every family; 60 is the whole library. A model's name, parameters and
    seed do not depend on ``size``.

    Every model has ``predict_proba`` and is cheap enough for benchmarks
    (forests of 50-100 trees, boosting of at most 100 iterations); forests
    use ``n_jobs=1``, so parallelism belongs to the caller (``n_jobs`` of
    the ensemble). kNN and the discriminant analyses do not accept
    ``sample_weight``: fitting the ensemble with sample weights raises an
    error that names them, unless metadata routing is enabled, where every
    model (each step of a Pipeline) that accepts sample weights requests
    them and the others are fitted unweighted.

    Parameters
    ----------
    size : int, default=20
        Number of models, from 1 to 60: the first ``size`` of the library.
        5, 20 and 60 are the documented sizes, balanced over the families.
    random_state : int, RandomState instance or None
        Seeds the randomized estimators (trees, forests, boosting), one seed
        each, drawn in library order as :func:`default_estimators` draws its
        own.

    Returns
    -------
    estimators : list of (str, estimator)
        Unique names, usable as ``CFEnsembleClassifier(estimators=...)`` or
        :class:`~sklearn.ensemble.StackingClassifier`'s ``estimators``.

    See Also
    --------
    default_estimators : The five-model default set, this library's first five.

    Examples
    --------
    >>> from skcfe import model_library
    >>> names = [name for name, _ in model_library(20, random_state=0)]
    >>> len(names), names[:5]
    (20, ['logistic', 'naive_bayes', 'tree', 'forest', 'boosting'])
    """
    n_seeded = sum(seeded for _, _, seeded in _LIBRARY)
    seeds = iter(check_random_state(random_state).randint(np.iinfo(np.int32).max, size=n_seeded))
    estimators = []
    for name, factory, seeded in _LIBRARY:
        # Draw every model's seed, used or not, so a seed never depends on size.
        seed = next(seeds) if seeded else None
        estimators.append((name, factory() if seed is None else factory().set_params(random_state=seed)))
    estimators = estimators[:size]
    if _routing_enabled():  # set_fit_request exists only then
        for _, est in estimators:
            for step in est.named_steps.values() if isinstance(est, Pipeline) else [est]:
                if has_fit_parameter(step, "sample_weight"):
                    step.set_fit_request(sample_weight=True)
    return estimators

