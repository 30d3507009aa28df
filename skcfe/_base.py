"""Shared estimator base: parameters, validation and the fit pipeline.

fit: encode y -> sample and class weights -> out-of-fold matrix R ->
confidence -> backend -> fitted state. Predicting: refit matrix of new rows
-> label-free confidence -> fold-in -> reconstruction. Both estimators share
all of it; they differ only in what they do with the reconstruction.
"""

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.ensemble._base import _BaseHeterogeneousEnsemble
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import Bunch, _safe_indexing, check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metadata_routing import UNUSED, _routing_enabled
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_method_params,
    _check_sample_weight,
    _num_samples,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from ._aggregator import AGGREGATOR_INPUTS, AGGREGATORS
from ._cache import cached_base_layer
from ._cf import CF_PARAMETERS, cf_fold_in, fit_cf
from ._confidence import CONFIDENCE_STRATEGIES
from ._matrix import check_prefit, cv_splits, refit_matrix
from ._routing import metadata_router, route_fit
from .backends import BACKENDS

SHARED_PARAMETERS_DOC = """\
estimators : list of (str, estimator) tuples, default=None
        Base classifiers, each with ``predict_proba``. Any of them can be
        set to ``'drop'`` and their parameters tuned as ``name__param``, as in
        :class:`~sklearn.ensemble.StackingClassifier`. ``None`` uses the
        default set of :func:`default_estimators`: scaled logistic regression,
        Gaussian naive Bayes, a decision tree, a random forest and histogram
        gradient boosting, seeded from ``random_state``.

    backend : {'als', 'torch'}, default='als'
        Algorithm that fits the factorization and the aggregator. 'als'
        alternates closed-form ridge updates (numpy); supervision reaches the
        factors only through the confidence weights. 'torch' minimizes the
        exact objective with exact autograd gradients (L-BFGS by default), so
        supervision reaches the factors through the differentiable fold-in
        (requires PyTorch).

    latent_dim : int or None, default=None
        Number of latent factors ``d`` of the factorization. ``None`` uses as
        many factors as ``R`` has columns: the confidence weights and the
        ridge then shape the reconstruction without a rank cut, which the
        benchmarks found best (a small ``d`` lost up to 0.02 PR-AUC on
        multiclass problems, whose ``R`` has one column per estimator-class
        pair). Lower it to denoise harder.

    rho : float, default=0.5
        Weight of the reconstruction term against the supervised term,
        in [0, 1]: ``L = rho * L_recon + (1 - rho) * L_sup``.

    lambda_reg : float, default=1e-3
        Ridge penalty of the latent factors (relative to the mean confidence).

    confidence : {'uniform', 'certainty', 'label_aware', 'calibration', \
'agreement'} or callable, default='certainty'
        How much each entry of the probability matrix counts. 'certainty':
        distance from the uninformative probability; 'label_aware':
        certainty, times ``1 + label_aware_alpha`` on training entries that
        agree with the label; 'calibration': per-estimator ``1 - Brier score``
        on the training rows; 'agreement': closeness to the other estimators'
        mean; a callable maps the probability matrix ``R`` to non-negative
        weights of the same shape.

    label_aware_alpha : float, default=1.0
        Extra weight of agreeing entries under ``confidence='label_aware'``.

    aggregator : {'weighted', 'mean'}, default='weighted'
        'weighted' learns one weight per column of the reconstructed
        probability matrix (logistic or softmax link) with the focal loss;
        'mean' averages the reconstructed probabilities and learns nothing.

    aggregator_alpha : float, default=10.0
        L2 penalty of the aggregator's weights on the scale of the summed
        losses, as ``1 / C`` of :class:`~sklearn.linear_model.LogisticRegression`:
        the supervised mean loss gets ``aggregator_alpha / (2 n) |coef|^2``,
        ``n`` the total sample weight of the labeled rows, so the penalty
        weakens as labeled data grows.

    aggregator_input : {'logit', 'proba'}, default='logit'
        Features of the 'weighted' aggregator: the logit of the reconstructed
        probabilities (clipped to [1e-3, 1 - 1e-3]) or the probabilities.

    focal_gamma : float, default=0.0
        Focusing parameter of the focal loss; 0 is cross-entropy.

    use_class_weights : bool, default=False
        Weigh each labeled row by ``n / (K n_k)`` of its class (counted with
        ``sample_weight``) in the supervised term and the factorization; the
        posterior correction then divides the weights out again. False by
        measurement: on held-out rows of the training splits it ranked rare
        classes no better and sometimes worse (benchmarks/README.md).

    posterior_correction : bool, default=True
        Undo in closed form the distortion that the focal loss and the class
        weights cause, so that probabilities estimate ``p(y | x)``.

    unlabeled_label : int, str or None, default=None
        Label value that marks unlabeled rows (for example -1). Those rows
        enter the factorization only; base estimators and the aggregator
        never see them. ``None``: every row is labeled.

    cv : int, cross-validation generator, iterable or 'prefit', default=5
        Folds for the out-of-fold probability matrix, as in
        :func:`~sklearn.model_selection.cross_val_predict`; an int gives
        :class:`~sklearn.model_selection.StratifiedKFold`. Every base
        estimator gets the same folds. With a group-aware splitter
        (:class:`~sklearn.model_selection.StratifiedGroupKFold`,
        :class:`~sklearn.model_selection.GroupKFold`), pass ``groups`` to
        ``fit``: no group then lands on both sides of a fold.
        'prefit': the base estimators are already fitted and used as they
        are (neither cloned nor refit); the probability matrix of the
        training rows is then their ``predict_proba`` on ``X``, in-sample
        unless they were fitted on other rows, with a high risk of
        overfitting the combiner, as in
        :class:`~sklearn.ensemble.StackingClassifier`. Wrapping fitted
        estimators in :class:`~sklearn.frozen.FrozenEstimator` does the same
        with any ``cv`` and survives :func:`~sklearn.base.clone`.

    max_iter : int, default=100
        Maximum number of ALS sweeps or torch epochs (one L-BFGS iteration or
        one Adam step each).

    tol : float, default=1e-4
        Stop when the relative change of the objective falls below ``tol``.

    solver : {'lbfgs', 'adam'}, default='lbfgs'
        Optimizer of the torch backend: full-batch L-BFGS, whose line search
        picks each step, or full-batch Adam (ignored by 'als').

    learning_rate : float, default=0.05
        Step size of ``solver='adam'`` (ignored by L-BFGS and by 'als').

    device : str, default='cpu'
        Torch device: 'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available;
        ignored by 'als'). Computation is float64 on every device, and the
        fitted state is always numpy, so a model trained on a GPU pickles and
        predicts without torch.

    n_jobs : int, default=None
        Parallel jobs for fitting the base estimators and their
        cross-validation, and for the combiner selection's level-1 fits
        (:class:`CFEnsembleClassifier`; joblib). Results do not depend on it.
        With None (and no joblib context that sets more), the selection's
        fits run in as many threads as BLAS may use, each with one BLAS
        thread, as ALS's row blocks do: ``threadpoolctl.threadpool_limits(1)``
        runs them one after another.

    random_state : int, RandomState instance or None, default=None
        Seeds the default base estimators, the backend's initialization and
        shuffled splitters; an int gives identical refits.

    verbose : int, default=0
        When > 0, print progress: one line per base estimator and fold
        (and per refit) with its time, one per combiner candidate as it is
        scored, and the objective of each sweep (ALS) or epoch (torch).

    memory : str, joblib.Memory or None, default=None
        Caches the base layer (the out-of-fold probability matrix and the
        refit base estimators), as :class:`~sklearn.pipeline.Pipeline` caches
        its transformers: a path or a :class:`joblib.Memory`. The key is the
        base estimators' parameters, the data, the folds of ``cv`` (which
        ``groups`` shape) and the metadata routed to the base estimators
        (sample weights and any other), so a search over the combiner's parameters
        (``focal_gamma``, ``aggregator_alpha``, ``combiner``, ...) fits the
        base layer once per outer fold. None: no caching."""


SHARED_ATTRIBUTES_DOC = """\
classes_ : ndarray of shape (n_classes,)
        Class labels.

    estimators_ : list of estimators
        Base estimators fitted on all labeled rows ('drop' excluded).

    named_estimators_ : :class:`~sklearn.utils.Bunch`
        Fitted base estimators by name.

    n_features_in_ : int
        Number of features seen during fit (from the base estimators).

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names seen during fit, when X has them.

    classifier_factors_ : ndarray of shape (n_columns, latent_dim)
        Latent factors of each column of the probability matrix.

    coef_ : ndarray of shape (1, n_columns) or (n_classes, n_columns)
        Aggregator weights of the (transformed) reconstructed probabilities
        ('mean': the fixed equal weights of the average).

    intercept_ : ndarray of shape (1,) or (n_classes,)
        Aggregator intercepts.

    class_weight_ : ndarray of shape (n_classes,)
        Class weights used in training (ones when ``use_class_weights=False``).

    confidence_scale_ : float
        Mean training confidence, which normalizes the fold-in of new rows.

    n_iter_ : int
        Sweeps (ALS) or epochs (torch) run.

    history_ : dict of str to list of float
        ``objective``, ``reconstruction`` and ``supervised`` per iteration."""


DEFAULT_ESTIMATOR_NAMES = ("logistic", "naive_bayes", "tree", "forest", "boosting")


def default_estimators(random_state=None):
    """The diverse default set of base estimators.

    Linear, generative, a single tree, bagging and boosting: their errors
    differ, which is what a combiner can exploit. Every one accepts
    ``sample_weight``; with metadata routing enabled, every one (each step
    of the logistic pipeline too) requests it, so sample weights reach them
    with routing as without.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        Seeds the randomized estimators.

    Returns
    -------
    estimators : list of (str, estimator)
    """
    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=3)
    estimators = [
        ("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("naive_bayes", GaussianNB()),
        ("tree", DecisionTreeClassifier(min_samples_leaf=5, random_state=seeds[0])),
        (
            "forest",
            RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seeds[1]),
        ),
        ("boosting", HistGradientBoostingClassifier(random_state=seeds[2])),
    ]
    if _routing_enabled():  # set_fit_request exists only then
        for _, est in estimators:
            for step in est.named_steps.values() if isinstance(est, Pipeline) else [est]:
                step.set_fit_request(sample_weight=True)
    return estimators


class BaseCFEnsemble(_BaseHeterogeneousEnsemble):
    """Parameters and the fit pipeline shared by the classifier and the transformer."""

    # fit routes groups to the splitter of cv; skcfe itself does not consume them.
    __metadata_request__fit: ClassVar[dict] = {"groups": UNUSED}

    _parameter_constraints: dict = {
        "estimators": [list, None, StrOptions({"precomputed"})],
        "backend": [StrOptions(set(BACKENDS))],
        "latent_dim": [Interval(Integral, 1, None, closed="left"), None],
        "rho": [Interval(Real, 0, 1, closed="both")],
        "lambda_reg": [Interval(Real, 0, None, closed="left")],
        "confidence": [StrOptions(set(CONFIDENCE_STRATEGIES)), callable],
        "label_aware_alpha": [Interval(Real, 0, None, closed="left")],
        "aggregator": [StrOptions(set(AGGREGATORS))],
        "aggregator_alpha": [Interval(Real, 0, None, closed="left")],
        "aggregator_input": [StrOptions(set(AGGREGATOR_INPUTS))],
        "focal_gamma": [Interval(Real, 0, None, closed="left")],
        "use_class_weights": ["boolean"],
        "posterior_correction": ["boolean"],
        "unlabeled_label": [None, Integral, str],
        "cv": ["cv_object", StrOptions({"prefit"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"lbfgs", "adam"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "device": [str],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "memory": [None, str, HasMethods(["cache"])],
    }

    def __init__(
        self,
        estimators=None,
        *,
        backend="als",
        latent_dim=None,
        rho=0.5,
        lambda_reg=1e-3,
        confidence="certainty",
        label_aware_alpha=1.0,
        aggregator="weighted",
        aggregator_alpha=10.0,
        aggregator_input="logit",
        focal_gamma=0.0,
        use_class_weights=False,
        posterior_correction=True,
        unlabeled_label=None,
        cv=5,
        max_iter=100,
        tol=1e-4,
        solver="lbfgs",
        learning_rate=0.05,
        device="cpu",
        n_jobs=None,
        random_state=None,
        verbose=0,
        memory=None,
    ):
        self.estimators = estimators
        self.backend = backend
        self.latent_dim = latent_dim
        self.rho = rho
        self.lambda_reg = lambda_reg
        self.confidence = confidence
        self.label_aware_alpha = label_aware_alpha
        self.aggregator = aggregator
        self.aggregator_alpha = aggregator_alpha
        self.aggregator_input = aggregator_input
        self.focal_gamma = focal_gamma
        self.use_class_weights = use_class_weights
        self.posterior_correction = posterior_correction
        self.unlabeled_label = unlabeled_label
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.learning_rate = learning_rate
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.memory = memory

    # -- base estimators -------------------------------------------------

    def _estimator_list(self):
        if self.estimators is None:
            return default_estimators(self.random_state)
        if self._precomputed:
            return []
        return self.estimators

    @property
    def _precomputed(self):
        return isinstance(self.estimators, str) and self.estimators == "precomputed"

    @property
    def _prefit(self):
        return isinstance(self.cv, str) and self.cv == "prefit"

    def _routing_targets(self):
        """Base estimators that fit fits, and the folds' cv (None: no folds)."""
        if self._precomputed or self._prefit:
            return [], None
        named = [(n, e) for n, e in self._estimator_list() if not (isinstance(e, str) and e == "drop")]
        return named, self.cv

    def get_metadata_routing(self):
        """Get metadata routing of this object.

        ``fit`` consumes ``sample_weight`` itself and routes metadata to the
        base estimators' ``fit`` (as they request it with
        ``set_fit_request``) and to the ``split`` of ``cv`` (``groups``).
        See scikit-learn's metadata routing user guide
        (https://scikit-learn.org/stable/metadata_routing.html) for how the
        routing mechanism works.

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter`
            encapsulating routing information.
        """
        return metadata_router(self, *self._routing_targets())

    def _validate_estimators(self):
        estimators = self._estimator_list()
        if len(estimators) == 0 or not all(
            isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
            for item in estimators
        ):
            raise ValueError(
                "Invalid 'estimators': expected a non-empty list of (name, estimator) "
                "tuples, or None for the default set."
            )
        names, ests = zip(*estimators)
        self._validate_names(names)
        if all(isinstance(est, str) and est == "drop" for est in ests):
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
            missing = [m for m in ("fit", "predict_proba") if not hasattr(est, m)]
            if "fit" in missing or not hasattr(est, "get_params"):
                raise ValueError(
                    f"Base estimator {name!r} ({type(est).__name__}) is not a scikit-learn "
                    "estimator: it needs fit, get_params and predict_proba."
                )
            if not is_classifier(est):
                raise ValueError(
                    f"Base estimator {name!r} ({type(est).__name__}) is not a classifier; "
                    "skcfe combines classifiers' predicted probabilities."
                )
            if not hasattr(est, "predict_proba"):
                raise ValueError(
                    f"Base estimator {name!r} ({type(est).__name__}) has no predict_proba. "
                    "skcfe factorizes predicted probabilities: use a probabilistic "
                    "classifier, e.g. SVC(probability=True), or wrap it in "
                    "CalibratedClassifierCV."
                )
        return list(names), list(ests)

    def get_params(self, deep=True):
        """Parameters of this estimator; with ``deep``, also those of the base estimators.

        With ``estimators=None`` the default set's parameters are listed too
        (``forest__max_depth``, ...), so they tune like an explicit list's.
        """
        if not (deep and self.estimators is None):
            return super().get_params(deep=deep)
        out = super().get_params(deep=False)
        for name, est in default_estimators(self.random_state):
            out[name] = est
            out.update({f"{name}__{key}": value for key, value in est.get_params().items()})
        return out

    def set_params(self, **params):
        """Set parameters; ``name__param`` or ``name='drop'`` of the default set too.

        Setting a default estimator's parameter (or dropping it) while
        ``estimators=None`` first makes the default set explicit, seeded from
        ``random_state`` exactly as fit would seed it.
        """
        if self.estimators is None and "estimators" not in params and any(
            key.split("__")[0] in DEFAULT_ESTIMATOR_NAMES for key in params
        ):
            self.estimators = default_estimators(params.get("random_state", self.random_state))
        return super().set_params(**params)

    @property
    def named_estimators(self):
        """Dictionary to access any unfitted base estimator by name."""
        return Bunch(**dict(self._estimator_list()))

    # -- validation -------------------------------------------------------

    def _check_targets(self, X, y, sample_weight):
        """Validate y and sample_weight; return (y_encoded, labeled, weights)."""
        if _num_samples(X) == 0:
            raise ValueError("Found array with 0 sample(s); fit needs at least one row per class.")
        shape = np.asarray(y).shape
        if len(shape) == 2 and shape[1] > 1:
            raise ValueError(
                f"y has shape {shape}: multilabel and multi-output targets are not "
                f"supported; {type(self).__name__} needs one class label per row. Fit one "
                "model per output (sklearn.multioutput.MultiOutputClassifier) instead."
            )
        y = column_or_1d(y, warn=True)
        _check_marker_type(y, self.unlabeled_label)
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError(
                "Input y contains NaN or infinity. Every row needs a finite label; to "
                "use rows without a label, give them a marker value and set "
                "unlabeled_label to it (e.g. unlabeled_label=-1)."
            )
        check_consistent_length(X, y, sample_weight)
        if type_of_target(y) == "continuous":
            raise ValueError(
                f"Unknown label type: continuous. {type(self).__name__} combines "
                "classifiers; y must hold class labels (integers or strings), not "
                "continuous values."
            )
        check_classification_targets(y)

        labeled = self._labeled_mask(y)
        if not labeled.any():
            raise ValueError(
                f"Every row is unlabeled (y == {self.unlabeled_label!r}); at least "
                "two classes of labeled rows are needed."
            )
        self._label_encoder = LabelEncoder().fit(y[labeled])
        self.classes_ = self._label_encoder.classes_
        if len(self.classes_) < 2:
            only = self.classes_[0]
            only = only.item() if isinstance(only, np.generic) else only
            besides = (
                "" if self.unlabeled_label is None
                else f" besides the unlabeled rows (y == {self.unlabeled_label!r})"
            )
            raise ValueError(
                f"{type(self).__name__} needs labeled rows of at least 2 classes; "
                f"got only one class: {only!r}{besides}."
            )
        y_encoded = np.zeros(len(y), dtype=np.intp)
        y_encoded[labeled] = self._label_encoder.transform(y[labeled])

        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if weights[labeled].sum() <= 0:
            raise ValueError(
                "sample_weight is zero on every labeled row; at least one labeled "
                "row needs a positive weight."
            )
        return y_encoded, labeled, weights

    def _labeled_mask(self, y):
        """True for rows with a label (every row when ``unlabeled_label`` is None)."""
        if self.unlabeled_label is None:
            return np.ones(len(y), dtype=bool)
        return np.asarray(y != self.unlabeled_label, dtype=bool)

    # -- fit --------------------------------------------------------------

    def _route_metadata(self, y, weights, sample_weight, groups, fit_params):
        """Metadata of fit for each base estimator and the splitter (see _routing.py)."""
        if groups is not None:
            check_consistent_length(y, groups)
        named, cv = self._routing_targets()
        if cv is None and self._selection_uses_groups():
            # No base-layer folds; the combiner's selection CV uses the groups.
            groups = None
        return route_fit(self, named, cv=cv, sample_weight=None if sample_weight is None else weights,
                         groups=groups, fit_params=fit_params)

    def _selection_uses_groups(self):
        """Whether fit uses ``groups`` beyond the base layer's folds (the classifier's selection)."""
        return False

    def _fit_model(self, X, y, sample_weight=None, groups=None, **fit_params):
        self._base_as_given = False
        if self._precomputed:
            y_encoded, labeled, weights = self._check_targets(X, y, sample_weight)
            self._route_metadata(y, weights, sample_weight, groups, fit_params)
            R = check_precomputed(X, len(self.classes_))
            self.estimators_, self.named_estimators_ = [], Bunch()
            self._n_columns = R.shape[1]
        else:
            names, all_estimators = self._validate_estimators()
            y_encoded, labeled, weights = self._check_targets(X, y, sample_weight)
            metadata = self._route_metadata(y, weights, sample_weight, groups, fit_params)
            R = self._fit_base_layer(X, names, all_estimators, y_encoded, labeled, metadata)
        n_classes = len(self.classes_)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self._fitted_cf_params = self._cf_params()
        if self.latent_dim is not None and self.latent_dim > R.shape[1]:
            warnings.warn(
                f"latent_dim={self.latent_dim} is more than the {R.shape[1]} columns of the "
                f"probability matrix, which bound the rank of the factorization; using "
                f"latent_dim={R.shape[1]} (set latent_dim=None for as many factors as columns).",
                UserWarning,
            )
            self._fitted_cf_params["latent_dim"] = R.shape[1]
        model, problem = fit_cf(
            R, y_encoded, labeled, weights, n_classes=n_classes, params=self._fitted_cf_params,
            seed=seed, classes=self.classes_,
        )
        self._cf_model, self._seed = model, seed
        self.class_weight_ = model.class_weight
        self.confidence_scale_ = model.confidence_scale
        self.classifier_factors_ = model.classifier_factors
        self.coef_ = model.coef
        self.intercept_ = model.intercept
        self.n_iter_ = model.n_iter
        self.history_ = model.history
        if not model.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge (backend={self.backend!r}, "
                f"{model.n_iter} of max_iter={self.max_iter} iterations): its stopping test at "
                f"tol={self.tol} was not met (torch: the gradient is not yet near zero). "
                "Increase max_iter or tol.",
                ConvergenceWarning,
            )
        return R, problem

    def _fit_base_layer(self, X, names, all_estimators, y_encoded, labeled, metadata):
        """Fit the base estimators; return the probability matrix of the training rows.

        With ``cv='prefit'`` the base estimators are used as they are: the
        matrix of every row is their ``predict_proba``.
        """
        named = [(n, e) for n, e in zip(names, all_estimators) if e != "drop"]
        X = _indexable(X)
        if self._prefit:
            self._base_as_given = True
            self.estimators_ = check_prefit(named)
            R = refit_matrix(self.estimators_, X, len(self.classes_), [n for n, _ in named],
                             classes=self.classes_, as_given=True)
        else:
            R = self._probability_matrix(named, X, y_encoded, labeled, metadata)
        self.named_estimators_ = Bunch()
        fitted = iter(self.estimators_)
        for name, est in zip(names, all_estimators):
            self.named_estimators_[name] = "drop" if est == "drop" else next(fitted)
        names_in = getattr(self.estimators_[0], "feature_names_in_", None)
        if names_in is not None:
            self.feature_names_in_ = names_in
        return R

    def _model_names(self):
        """Names of the base models, in the column order of R."""
        if self._precomputed:
            width = 1 if len(self.classes_) == 2 else len(self.classes_)
            return [f"column{j}" if width == 1 else f"model{j}"
                    for j in range(self._n_columns // width)]
        return [name for name, est in self.named_estimators_.items() if est != "drop"]

    def _probability_matrix(self, named, X, y_encoded, labeled, metadata):
        """R of the training rows; fits ``estimators_`` on the labeled rows.

        Labeled rows get out-of-fold probabilities, unlabeled rows those of the
        estimators refit on every labeled row. ``metadata`` (from
        :func:`~skcfe._routing.route_fit`) holds each base estimator's fit
        parameters and the splitter's, for all rows: both are indexed to the
        labeled rows here, and to each fold's rows by the base layer.
        """
        n_classes = len(self.classes_)
        lab_idx = np.flatnonzero(labeled)
        fit_params, split_params = metadata.estimators, metadata.split
        X_lab = X
        if not labeled.all():
            X_lab = _safe_indexing(X, lab_idx)
            fit_params = {name: _check_method_params(X, params, indices=lab_idx)
                          for name, params in fit_params.items()}
            split_params = _check_method_params(X, split_params, indices=lab_idx)
        y_lab = y_encoded[lab_idx]
        splits = cv_splits(self.cv, X_lab, y_lab, split_params, self.random_state)
        R_lab, self.estimators_ = cached_base_layer(
            self.memory, named, X_lab, y_lab, splits, fit_params,
            n_classes=n_classes, n_jobs=self.n_jobs, verbose=self.verbose, classes=self.classes_,
        )
        R = np.empty((len(labeled), R_lab.shape[1]))
        R[lab_idx] = R_lab
        if not labeled.all():
            unl_idx = np.flatnonzero(~labeled)
            R[unl_idx] = refit_matrix(self.estimators_, _safe_indexing(X, unl_idx), n_classes,
                                      [name for name, _ in named], classes=self.classes_)
        return R

    # -- predict-time representation -------------------------------------

    def _new_matrix(self, X):
        """Probability matrix of new rows, from the refit base estimators."""
        if self._precomputed:
            R = check_precomputed(X, len(self.classes_))
            if R.shape[1] != self._n_columns:
                raise ValueError(
                    f"X has {R.shape[1]} columns, but {type(self).__name__} was fitted "
                    f"with estimators='precomputed' on {self._n_columns}; give the same "
                    "base models' probabilities in the same column order."
                )
            return R
        return refit_matrix(self.estimators_, _indexable(X), len(self.classes_),
                            self._model_names(), classes=self.classes_,
                            as_given=getattr(self, "_base_as_given", False))

    def _reconstruct(self, X):
        """Fold-in factors and reconstructed probabilities of new rows."""
        check_is_fitted(self)
        Y = self._fold_in(self._new_matrix(X))
        return Y, Y @ self.classifier_factors_.T

    def _fold_in(self, R):
        return cf_fold_in(self._cf_model, R)

    def _cf_params(self):
        return {name: getattr(self, name) for name in CF_PARAMETERS}

    @property
    def n_features_in_(self):
        """Number of features seen during fit (from the base estimators)."""
        try:
            check_is_fitted(self)
        except Exception as exc:
            raise AttributeError(
                f"{type(self).__name__} object has no attribute 'n_features_in_'"
            ) from exc
        if self._precomputed:
            return self._n_columns
        return self.estimators_[0].n_features_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self._precomputed:
            tags.input_tags.allow_nan = tags.input_tags.sparse = False
            return tags
        try:
            ests = [est for _, est in self._estimator_list() if est != "drop"]
            tags.input_tags.allow_nan = all(get_tags(est).input_tags.allow_nan for est in ests)
            tags.input_tags.sparse = all(get_tags(est).input_tags.sparse for est in ests)
        except (TypeError, ValueError, AttributeError):
            # Invalid 'estimators' is reported by fit; tags keep their defaults.
            pass
        return tags


def _indexable(X):
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


def _check_marker_type(y, marker):
    """``unlabeled_label`` must be able to equal a label: a string for string labels."""
    if marker is None:
        return
    if y.dtype.kind in "biuf":
        labels_are_strings = False
    elif y.dtype.kind in "US":
        labels_are_strings = True
    else:
        kinds = {isinstance(v, str) for v in y}
        if len(kinds) > 1:
            raise ValueError(
                "y mixes string and non-string labels; use one type for every label "
                f"(and for unlabeled_label={marker!r})."
            )
        labels_are_strings = kinds == {True}
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
    if observed.any() and (R[observed].min() < 0.0 or R[observed].max() > 1.0):
        raise ValueError(
            "With estimators='precomputed', X holds predicted probabilities and must "
            f"lie in [0, 1]; got values in [{R[observed].min():g}, {R[observed].max():g}]."
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
