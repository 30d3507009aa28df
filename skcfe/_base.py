"""Shared estimator base: parameters, validation and the fit pipeline.

fit: encode y -> sample and class weights -> out-of-fold matrix R ->
confidence -> backend -> fitted state. Predicting: refit matrix of new rows
-> label-free confidence -> fold-in -> reconstruction. Both estimators share
all of it; they differ only in what they do with the reconstruction.
"""

import copy
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble._base import _BaseHeterogeneousEnsemble
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch, _safe_indexing, check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metadata_routing import UNUSED, MetadataRouter
from sklearn.utils.validation import (
    _check_feature_names_in,
    _check_method_params,
    check_is_fitted,
)

from ._aggregator import AGGREGATOR_INPUTS, AGGREGATORS
from ._cache import cached_base_layer
from ._cf import CF_PARAMETERS, cf_fold_in, fit_cf
from ._confidence import CONFIDENCE_STRATEGIES
from ._library import DEFAULT_ESTIMATOR_NAMES, default_estimators
from ._matrix import check_prefit, cv_splits, refit_matrix
from ._routing import metadata_router, route_fit
from ._validation import (
    check_estimators,
    check_precomputed,
    check_row_aligned,
    check_targets,
    indexable,
)
from .backends import BACKENDS


class IntNotBool(Interval):
    """An :class:`Interval` of ints that rejects bools (``True`` is an int in Python).

    ``unlabeled_label=True`` would otherwise unlabel class 1 silently, and
    ``latent_dim=True`` would mean one factor.
    """

    def __init__(self, left=None, right=None, *, closed="neither"):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)

    def __str__(self):
        if self.left is None and self.right is None:
            return "an int (not a bool)"
        return f"{super().__str__()} (not a bool)"


class BaseCFEnsemble(_BaseHeterogeneousEnsemble):
    """Parameters and the fit pipeline shared by the classifier and the transformer."""

    # fit routes groups to the splitter of cv; skcfe itself does not consume them.
    __metadata_request__fit: ClassVar[dict] = {"groups": UNUSED}

    _parameter_constraints: dict = {
        "estimators": [list, None, StrOptions({"precomputed"})],
        "backend": [StrOptions(set(BACKENDS))],
        "latent_dim": [IntNotBool(1, None, closed="left"), None],
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
        "unlabeled_label": [None, IntNotBool(), str],
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

    def get_metadata_routing(self) -> MetadataRouter:
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
        check_estimators(estimators)
        names, ests = zip(*estimators)
        self._validate_names(names)
        return list(names), list(ests)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator; with ``deep``, also those of the base estimators.

        With ``estimators=None`` the default set's parameters are listed too
        (``forest__max_depth``, ...), so they tune like an explicit list's.
        """
        if not (deep and self.estimators is None):
            return super().get_params(deep=deep)
        out = super().get_params(deep=False)
        # Listing must not change state: a RandomState is copied, not drawn from, so
        # every call lists the same seeds (those fit would draw first) and the user's
        # generator does not advance. An invalid random_state (fit reports it) lists
        # no nested parameters, so set_params of any other one still works.
        random_state = self.random_state
        if isinstance(random_state, np.random.RandomState):
            random_state = copy.deepcopy(random_state)
        try:
            defaults = default_estimators(random_state)
        except (TypeError, ValueError):
            return out
        for name, est in defaults:
            out[name] = est
            out.update({f"{name}__{key}": value for key, value in est.get_params().items()})
        return out

    def set_params(self, **params: Any) -> "BaseCFEnsemble":
        """Set parameters; ``name__param`` or ``name='drop'`` of the default set too.

        Setting a default estimator's parameter (or dropping it) while
        ``estimators=None`` first makes the default set explicit: afterwards
        ``estimators`` is that list (``get_params(deep=False)`` shows it, and
        ``clone`` keeps it), seeded from ``random_state`` exactly as fit would
        seed it and as ``get_params`` lists it (a RandomState is copied, not
        advanced). A later change of ``random_state`` then no longer reseeds
        the base estimators.
        """
        if self.estimators is None and "estimators" not in params and any(
            key.split("__")[0] in DEFAULT_ESTIMATOR_NAMES for key in params
        ):
            random_state = params.get("random_state", self.random_state)
            if isinstance(random_state, np.random.RandomState):
                random_state = copy.deepcopy(random_state)
            self.estimators = default_estimators(random_state)
        return super().set_params(**params)

    @property
    def named_estimators(self):
        """Dictionary to access any unfitted base estimator by name."""
        return Bunch(**dict(self._estimator_list()))

    # -- validation -------------------------------------------------------

    def _check_targets(self, X, y, sample_weight):
        """Validate y and sample_weight; return (y_encoded, labeled, weights)."""
        y_encoded, labeled, weights, self._label_encoder = check_targets(
            X, y, sample_weight, self.unlabeled_label, type(self).__name__)
        self.classes_ = self._label_encoder.classes_
        return y_encoded, labeled, weights

    # -- fit --------------------------------------------------------------

    def _route_metadata(self, y, weights, sample_weight, groups, fit_params):
        """Metadata of fit for each base estimator and the splitter (see _routing.py)."""
        if groups is not None:
            check_row_aligned("groups", groups, len(y))
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
        # A refit on data without column names must not keep the last fit's names.
        self.__dict__.pop("feature_names_in_", None)
        if self._precomputed:
            y_encoded, labeled, weights = self._check_targets(X, y, sample_weight)
            self._route_metadata(y, weights, sample_weight, groups, fit_params)
            R = check_precomputed(X, len(self.classes_))
            self.estimators_, self.named_estimators_ = [], Bunch()
            self.stack_method_, self.calibrators_ = [], []
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
            warnings.warn(self._not_converged_message(model), ConvergenceWarning)
        return R, problem

    def _not_converged_message(self, model):
        """Why the backend stopped short of its stopping test, and what would help."""
        head = (f"{type(self).__name__} did not converge (backend={self.backend!r}, stopped "
                f"after {model.n_iter} of max_iter={self.max_iter} iterations)")
        away = "while the gradient is not yet near zero (|grad|^2 > tol * |objective|)"
        kinks = ("The fit is usable (the aggregator is solved for the final factors). "
                 "More iterations will not help: aggregator_input='proba' makes the objective "
                 "smooth, backend='als' does not stall, or a larger tol accepts this point.")
        if model.stop_reason == "line_search":
            return (f"{head}: L-BFGS's line search found no decrease, at a kink of the "
                    f"clipped logits, {away}, tol={self.tol}. {kinks}")
        if model.stop_reason == "stalled":
            if self.solver == "adam":
                return (f"{head}: the objective changed by less than tol={self.tol} "
                        f"(relative) over an epoch, {away}. Lower learning_rate or tol, or "
                        "use solver='lbfgs'.")
            return (f"{head}: L-BFGS stalled, the objective changing by less than "
                    f"tol={self.tol} (relative) over an epoch, {away}. {kinks}")
        test = ("the gradient is not yet near zero (|grad|^2 > tol * |objective|)"
                if self.backend == "torch" else "the objective still changes by more than tol")
        return (f"{head}: max_iter was reached before its stopping test at tol={self.tol} was "
                f"met ({test}). Increase max_iter, or tol.")

    def _fit_base_layer(self, X, names, all_estimators, y_encoded, labeled, metadata):
        """Fit the base estimators; return the probability matrix of the training rows.

        With ``cv='prefit'`` the base estimators are used as they are: the
        matrix of every row is their ``predict_proba``.
        """
        named = [(n, e) for n, e in zip(names, all_estimators) if e != "drop"]
        X = indexable(X)
        if self._prefit:
            self._base_as_given = True
            self.estimators_ = check_prefit(named)
            self.stack_method_ = ["predict_proba"] * len(named)
            self.calibrators_ = [None] * len(named)
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
        splits = cv_splits(self.cv, X_lab, y_lab, split_params, self.random_state,
                           classes=self.classes_)
        if (self.memory is not None and self.estimators is None
                and not isinstance(self.random_state, Integral)):
            warnings.warn(
                f"memory is set, but with estimators=None and random_state="
                f"{self.random_state!r} the default base estimators get new seeds on every fit, so the cache never "
                "hits and every fit adds entries to it. Set random_state to an int to reuse "
                "the cached base layer.",
                UserWarning,
            )
        R_lab, self.estimators_, self.calibrators_ = cached_base_layer(
            self.memory, named, X_lab, y_lab, splits, fit_params,
            n_classes=n_classes, n_jobs=self.n_jobs, verbose=self.verbose, classes=self.classes_,
        )
        self.stack_method_ = ["predict_proba" if cal is None else "decision_function"
                              for cal in self.calibrators_]
        R = np.empty((len(labeled), R_lab.shape[1]))
        R[lab_idx] = R_lab
        if not labeled.all():
            unl_idx = np.flatnonzero(~labeled)
            R[unl_idx] = refit_matrix(self.estimators_, _safe_indexing(X, unl_idx), n_classes,
                                      [name for name, _ in named], classes=self.classes_,
                                      calibrators=self.calibrators_)
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
        return refit_matrix(self.estimators_, indexable(X), len(self.classes_),
                            self._model_names(), classes=self.classes_,
                            as_given=getattr(self, "_base_as_given", False),
                            calibrators=getattr(self, "calibrators_", None))

    def _reconstruct(self, X):
        """Fold-in factors and reconstructed probabilities of new rows."""
        check_is_fitted(self)
        Y = self._fold_in(self._new_matrix(X))
        return Y, Y @ self.classifier_factors_.T

    def _fold_in(self, R):
        return cf_fold_in(self._cf_model, R)

    def _cf_params(self):
        return {name: getattr(self, name) for name in CF_PARAMETERS}

    def _feature_names_prefix(self, input_features):
        """Check ``input_features`` of get_feature_names_out; the output names' prefix."""
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        return type(self).__name__.lower()

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
