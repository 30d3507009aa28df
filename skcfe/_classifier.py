"""CFEnsembleClassifier: stacking through collaborative filtering."""

from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseCFEnsemble
from ._docs import fill_doc
from .level1 import COMBINER_STRINGS, Level1Context, fit_level1
from .level1.selection import get_scorer

COMBINER_DOC = """\
combiner : {'auto', 'select', 'cf'}, classifier or list of (str, estimator), \
default='auto'
        The level-1 model, fitted on the out-of-fold probability matrix (no
        base estimator is refit for it).

        - 'auto': a continuous Super Learner. Every candidate of the
          documented library (:func:`skcfe.level1.default_candidates`: the
          CF aggregator as configured, the CF aggregator with one latent
          factor per class, StackingClassifier's logistic regression,
          non-negative logit stacking, greedy ensemble selection and each
          base estimator alone) is scored by stratified cross-validation
          on the matrix, and they are pooled with non-negative weights
          fitted on their out-of-fold predictions.
        - 'select': the single candidate with the best score (discrete
          Super Learner).
        - 'cf': the CF aggregator as configured, alone; no selection.
        - a scikit-learn classifier with ``predict_proba``: fitted on the
          matrix as :class:`~sklearn.ensemble.StackingClassifier` fits its
          ``final_estimator`` (with ``LogisticRegression()`` and the same
          ``cv`` it predicts what StackingClassifier predicts); no
          selection. Its parameters tune as ``combiner__C``.
        - a list of ``(name, estimator)``: the Super Learner ('auto') over
          exactly these candidates, each a scikit-learn classifier or a
          :mod:`skcfe.level1` candidate (``CFCandidate(latent_dim=3)``, ...);
          parameters tune as ``combiner__name__param``.

        The CF parameters (``latent_dim`` ... ``posterior_correction``)
        shape the CF candidates only: under 'auto' they change the output
        only as far as the pool weights the CF candidates (see the user
        guide).

    scoring : str, callable or None, default=None
        Criterion of the selection, a scikit-learn scorer name or callable
        (greater is better). ``None``: 'average_precision' (PR-AUC) for
        binary problems, 'neg_log_loss' for more classes.

    selection_cv : int, default=5
        Folds of the selection's stratified cross-validation over the labeled
        rows, capped by the number of labeled rows of the smallest class (and,
        with ``groups``, by the number of groups: the folds are then
        :class:`~sklearn.model_selection.StratifiedGroupKFold`'s). A class
        with a single labeled row leaves nothing to validate on: the
        selection is then skipped and 'cf' used. Beyond 50,000 labeled rows
        (``skcfe.level1.selection.SELECTION_MAX_ROWS``) the selection is a
        holdout instead, so that it costs the same at any size: the
        candidates are fitted once on a stratified sample of 20,000 labeled
        rows and scored, and pooled, on up to 50,000 others (whole groups on
        either side with ``groups``), and those fits predict."""

SELECTION_ATTRIBUTES_DOC = """\
combiner_ : str
        The level-1 model :meth:`predict_proba` uses: 'super_learner' (the
        pool, under 'auto' or a list), the chosen candidate's name under
        'select' ('cf', 'cf(latent_dim=K)', 'stacking', 'nonneg_logit',
        'greedy' or 'single:<name>'), 'cf', or the class name of a
        ``combiner`` estimator.

    combiner_estimator_ : object
        The fitted level-1 model named by ``combiner_``; every kind has
        ``predict_proba`` on the probability matrix. The CF attributes below
        (``classifier_factors_``, ``coef_``, ...) always describe the CF
        aggregator as configured, whatever is chosen.

    selection_results_ : dict of str to list or ndarray, or None
        Every candidate's cross-validated score, like ``cv_results_`` of
        :class:`~sklearn.model_selection.GridSearchCV`: ``candidate``,
        ``pooled_test_score`` (the score of its out-of-fold predictions over
        all labeled rows, which the choice uses), ``mean_test_score``,
        ``std_test_score`` and ``split<k>_test_score`` over the folds,
        ``rank_test_score``, ``mean_fit_time`` and, when pooled, ``weight``
        (its weight in the Super Learner's pool). Plot it with
        :class:`~skcfe.SelectionDisplay`. None when no selection ran. Beyond
        50,000 labeled rows it is a holdout, one split (see ``selection_cv``).

    """


class CFEnsembleClassifier(ClassifierMixin, BaseCFEnsemble):
    """Stacking classifier that factorizes the base estimators' probabilities.

    The base classifiers' out-of-fold probabilities form a matrix ``R``
    (rows: data points, columns: classifiers, or classifier-class pairs for
    K > 2 classes). CF-Ensemble factorizes it as in collaborative filtering,
    ``R ~ Y X^T``, which denoises and couples the base predictions, and a
    supervised aggregator turns the reconstruction into class probabilities.
    Focal loss (``focal_gamma``) and class weights (``use_class_weights``)
    target imbalanced, hard problems; their distortion of the probabilities is
    undone in closed form, so :meth:`predict_proba` estimates ``p(y | x)``.

    The parameters by role: the base layer (``estimators``, ``cv``,
    ``memory``, ``n_jobs``, ``random_state``, ``unlabeled_label``) makes the
    probability matrix; the level-1 choice (``combiner``, ``scoring``,
    ``selection_cv``, last below) decides what combines it; the CF
    factorization (``backend`` to ``tol``) configures the CF aggregator,
    which predicts alone under ``combiner='cf'`` and is one candidate of
    the pool under ``'auto'`` (so ``focal_gamma`` and the rest change the
    default's output only as far as the pool weights it); ``solver``,
    ``learning_rate`` and ``device`` matter only to ``backend='torch'``.

    Parameters
    ----------
    %(shared_parameters)s

    %(combiner)s

    Attributes
    ----------
    %(selection_attributes)s%(shared_attributes)s

    See Also
    --------
    CFEnsembleTransformer : The same factorization as a Pipeline stage.
    sklearn.ensemble.StackingClassifier : Stacking without factorization.

    Notes
    -----
    With ``w`` the sample weights, ``c`` the confidence, ``s`` the sample
    weights times the class weights and ``FL`` the focal loss of Lin et al.,
    the objective is::

        L = rho * L_recon + (1 - rho) * L_sup
        L_recon = sum_iu w_i c_iu (r_iu - y_i . x_u)^2 / sum_iu w_i c_iu
                  + lambda_reg (|X|^2 / q + sum_i w_i |y_i|^2 / sum_i w_i)
        L_sup = sum_i s_i FL_gamma(p_i, y_i) / sum_i s_i
        FL_gamma(p, y) = -(1 - p_y)^gamma log p_y

    The instance factors of any row, training rows included, are its
    "fold-in": the ridge solution ``y = (X^T C X + lambda I)^-1 X^T C r``
    with the classifier factors fixed and label-free confidence. The
    aggregator is trained on exactly what predict computes, so the estimator
    is inductive: predictions of a row do not depend on the other rows.

    Focal loss is not strictly proper and class weights shift the prior, so
    the aggregator's raw output is not ``p(y | x)``. With
    ``posterior_correction=True`` skcfe applies the inverse link of
    Charoenphakdee et al. (``h(v) = v / ((1 - v)^gamma - gamma (1 - v)^(gamma
    - 1) v log v)``, normalized) and then divides by the class weights.

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollar, "Focal Loss
       for Dense Object Detection", ICCV 2017.
    .. [2] N. Charoenphakdee, J. Vongkulbhisal, N. Chairatanakul and M.
       Sugiyama, "On Focal Loss for Class-Posterior Probability Estimation: A
       Theoretical Perspective", CVPR 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from skcfe import CFEnsembleClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = CFEnsembleClassifier(
    ...     [("nb", GaussianNB()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))],
    ...     latent_dim=2, focal_gamma=2.0, random_state=0,
    ... ).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _parameter_constraints: dict = {
        **BaseCFEnsemble._parameter_constraints,
        "combiner": [StrOptions(set(COMBINER_STRINGS)), list, HasMethods(["fit"])],
        "scoring": [None, str, callable, HasMethods("__call__")],
        "selection_cv": [Interval(Integral, 2, None, closed="left")],
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
        combiner="auto",
        scoring=None,
        selection_cv=5,
    ):
        super().__init__(
            estimators,
            backend=backend,
            latent_dim=latent_dim,
            rho=rho,
            lambda_reg=lambda_reg,
            confidence=confidence,
            label_aware_alpha=label_aware_alpha,
            aggregator=aggregator,
            aggregator_alpha=aggregator_alpha,
            aggregator_input=aggregator_input,
            focal_gamma=focal_gamma,
            use_class_weights=use_class_weights,
            posterior_correction=posterior_correction,
            unlabeled_label=unlabeled_label,
            cv=cv,
            max_iter=max_iter,
            tol=tol,
            solver=solver,
            learning_rate=learning_rate,
            device=device,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            memory=memory,
        )
        self.combiner = combiner
        self.scoring = scoring
        self.selection_cv = selection_cv

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | float | None = None,
        groups: ArrayLike | None = None,
        **fit_params: Any,
    ) -> "CFEnsembleClassifier":
        """Fit the base estimators, the factorization and the aggregator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, passed to the base estimators as is.
        y : array-like of shape (n_samples,)
            Class labels; rows equal to ``unlabeled_label`` are unlabeled.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Non-negative row weights of skcfe's own objective (the supervised
            term and the factorization); a float weights every row alike. They also reach the base
            estimators' ``fit``: every base estimator and each Pipeline step
            that accepts them or, with metadata routing enabled, those that
            request them (``set_fit_request``). With ``cv='prefit'`` no base
            estimator is fitted, so they weight skcfe's combiner only.
        groups : array-like of shape (n_samples,), default=None
            Group labels of the rows (patients, sessions, ...) for a
            group-aware ``cv`` such as
            :class:`~sklearn.model_selection.StratifiedGroupKFold`: no group
            is then split between the rows a base estimator is fitted on and
            the rows it predicts out of fold. An error with a ``cv`` that
            ignores groups. With metadata routing enabled they go, like any
            metadata, to whatever requests them (a group-aware splitter does).
            The combiner's selection (``combiner`` other than 'cf') makes
            its inner folds by group too, also with
            ``estimators='precomputed'`` or ``cv='prefit'``.
        **fit_params : dict
            Other metadata, routed to the base estimators that request it.
            Only available with ``sklearn.set_config(enable_metadata_routing=True)``;
            see scikit-learn's metadata routing user guide
            (https://scikit-learn.org/stable/metadata_routing.html).

        Returns
        -------
        self : CFEnsembleClassifier
            Fitted estimator.
        """
        self._fit(X, y, sample_weight, groups, **fit_params)
        return self

    def fit_transform(self, X, y, sample_weight=None, groups=None, **fit_params):
        """Fit, then :meth:`transform` ``X``: as StackingClassifier's, in-sample.

        The same as ``fit(X, y).transform(X)``, so the training rows'
        columns come from base estimators fitted on them. For leak-free
        features of training rows (a downstream model in a Pipeline), use
        :meth:`CFEnsembleTransformer.fit_transform`, which is cross-fitted.

        Parameters
        ----------
        X, y, sample_weight, groups, **fit_params
            As in :meth:`fit`.

        Returns
        -------
        R : ndarray of shape (n_samples, n_columns)
            Columns named by :meth:`get_feature_names_out`.
        """
        return self.fit(X, y, sample_weight, groups, **fit_params).transform(X)

    def _fit(self, X, y, sample_weight=None, groups=None, **fit_params):
        """Fit everything; return the training rows' probability matrix."""
        R, problem = self._fit_model(X, y, sample_weight, groups, **fit_params)
        n_classes = len(self.classes_)
        context = Level1Context(
            n_classes=n_classes, names=tuple(self._model_names()),
            cf_params=dict(self._fitted_cf_params, verbose=0), seed=self._seed,
            scorer=get_scorer(self.scoring, n_classes),
        )
        level1 = fit_level1(
            self.combiner, R, problem.y, problem.labeled, problem.row_weight, context,
            cf_model=self._cf_model, selection_cv=self.selection_cv, groups=groups,
            n_jobs=self.n_jobs, verbose=self.verbose,
        )
        self.combiner_, self.combiner_estimator_ = level1.name, level1.model
        self.selection_results_ = level1.results
        return R

    def _selection_uses_groups(self):
        return isinstance(self.combiner, (str, list)) and not (
            isinstance(self.combiner, str) and self.combiner == "cf")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator; with ``deep``, nested ones too.

        Besides the base estimators' (``name__param``), those of the
        combiner: ``combiner__param`` for an estimator, and
        ``combiner__name`` and ``combiner__name__param`` for a list of
        candidates.
        """
        out = super().get_params(deep=deep)
        if deep and isinstance(self.combiner, list):
            for item in self.combiner:
                if not (isinstance(item, (tuple, list)) and len(item) == 2):
                    break  # fit reports the invalid list
                name, est = item
                out[f"combiner__{name}"] = est
                if hasattr(est, "get_params") and not isinstance(est, type):
                    out.update({f"combiner__{name}__{key}": value
                                for key, value in est.get_params(deep=True).items()})
        return out

    def set_params(self, **params: Any) -> "CFEnsembleClassifier":
        """Set parameters, ``combiner__name`` and ``combiner__name__param`` of a list too."""
        combiner = params.get("combiner", self.combiner)
        nested = [key for key in params if key.startswith("combiner__")]
        if isinstance(combiner, list) and nested:
            combiner = list(combiner)
            names = [name for name, _ in combiner]
            for key in nested:
                name, _, sub = key[len("combiner__"):].partition("__")
                if name not in names:
                    raise ValueError(
                        f"Invalid parameter {key!r}: the combiner has no candidate {name!r} "
                        f"(its candidates: {names})."
                    )
                value = params.pop(key)
                i = names.index(name)
                if sub:
                    combiner[i][1].set_params(**{sub: value})
                else:
                    combiner[i] = (name, value)
            params["combiner"] = combiner
        return super().set_params(**params)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The level-1 model's probabilities. The CF aggregator's are the
            corrected posterior when ``posterior_correction`` was True at
            fit, else its raw output.
        """
        check_is_fitted(self)
        R = self._new_matrix(X)
        model = self.combiner_estimator_
        if not model.handles_missing and np.isnan(R).any():
            raise ValueError(
                "X has missing predictions (NaN), but this model was fitted on a complete "
                f"matrix and its combiner ({self.combiner_!r}) needs every prediction. Fit "
                "on a matrix with missing entries (they train the completion), or use "
                "combiner='cf', which completes them by the fold-in."
            )
        return model.predict_proba(R)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        check_is_fitted(self)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Log-odds of the positive class (binary) or log-probabilities (K classes).

        Consistent with :meth:`predict`: the largest value (binary: a positive
        value) gives the predicted class.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        log_proba = self.predict_log_proba(X)
        if log_proba.shape[1] == 2:
            return log_proba[:, 1] - log_proba[:, 0]
        return log_proba

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable class of each row of ``X``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def transform(self, X: ArrayLike) -> np.ndarray:
        """The base estimators' probabilities of ``X``: the probability matrix R.

        As :meth:`~sklearn.ensemble.StackingClassifier.transform`: the
        predictions of the base estimators refit on every labeled row, one
        column per estimator for two classes (the probability of
        ``classes_[1]``), one per estimator and class otherwise. An estimator
        without ``predict_proba`` enters through its ``decision_function``
        mapped by the calibrator fitted on its out-of-fold scores.

        These are in-sample predictions for the rows the estimators were
        fitted on: ``fit(X, y).transform(X)`` (and :meth:`fit_transform`) is
        over-confident where a base estimator memorizes its training rows.
        For features of training rows (a downstream model in a Pipeline),
        use :meth:`CFEnsembleTransformer.fit_transform`, which is
        cross-fitted and leak-free.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        R : ndarray of shape (n_samples, n_columns)
            Columns named by :meth:`get_feature_names_out`.
        """
        check_is_fitted(self)
        return self._new_matrix(X)

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> np.ndarray:
        """Names of the columns of :meth:`transform`.

        As StackingClassifier names them: ``'cfensembleclassifier_<name>'``
        for each base estimator with two classes,
        ``'cfensembleclassifier_<name><k>'`` for its class ``k`` (the index
        in ``classes_``) otherwise.

        %(feature_names_out)s
        """
        prefix = self._feature_names_prefix(input_features)
        if len(self.classes_) == 2:
            names = [f"{prefix}_{name}" for name in self._model_names()]
        else:
            names = [f"{prefix}_{name}{k}" for name in self._model_names()
                     for k in range(len(self.classes_))]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform gives the base estimators' predictions, as StackingClassifier's does.
        tags.transformer_tags = TransformerTags()
        return tags


fill_doc(CFEnsembleClassifier, combiner=COMBINER_DOC, selection_attributes=SELECTION_ATTRIBUTES_DOC)
