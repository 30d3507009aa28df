"""CFEnsembleTransformer: ensemble transformation as a Pipeline stage."""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseCFEnsemble
from ._docs import fill_doc


class CFEnsembleTransformer(TransformerMixin, BaseCFEnsemble):
    """Transform base classifiers' probabilities into a denoised probability matrix.

    An extra stage between generating an ensemble and combining it. The base
    classifiers' probabilities form a matrix ``R`` (rows: data points,
    columns: classifiers, or classifier-class pairs for K > 2 classes), which
    CF-Ensemble factorizes as ``R ~ Y X^T``. :meth:`transform` returns the
    reconstruction ``Y X^T`` of any rows, a more reliable probability matrix
    for a final estimator downstream in a :class:`~sklearn.pipeline.Pipeline`,
    or their latent factors ``Y`` (``output='factors'``).

    It is fitted exactly like :class:`CFEnsembleClassifier`: same base
    estimators, out-of-fold matrix, confidence, factorization, backends and
    supervised aggregator (which is part of the objective, so the labels shape
    the factors as they do in the classifier).

    The parameters by role: the base layer (``estimators``, ``cv``,
    ``memory``, ``n_jobs``, ``random_state``, ``unlabeled_label``) makes the
    probability matrix; the CF factorization (``backend`` to ``tol``) is
    what it transforms; ``solver``, ``learning_rate`` and ``device`` matter
    only to ``backend='torch'``; ``output`` chooses what ``transform`` returns.

    Parameters
    ----------
    %(shared_parameters)s

    output : {'reconstruction', 'factors'}, default='reconstruction'
        What :meth:`transform` returns: the reconstructed probability matrix
        (one column per column of ``R``) or the latent instance factors (one
        column per latent dimension).

    Attributes
    ----------
    %(shared_attributes)s

    See Also
    --------
    CFEnsembleClassifier : The same model, predicting classes.
    sklearn.ensemble.StackingClassifier : Stacking without factorization.
    sklearn.preprocessing.TargetEncoder : A supervised transformer whose
        ``fit_transform`` is cross-fitted in the same way.

    Notes
    -----
    The objective is that of :class:`CFEnsembleClassifier`::

        L = rho * L_recon + (1 - rho) * L_sup

    The rows of :meth:`transform` are the "fold-in" of each row's base
    probabilities ``r``: ``y = (X^T C X + lambda I)^-1 X^T C r`` with the
    classifier factors ``X`` fixed and label-free confidence ``C``, and the
    reconstruction ``y X^T``. A row's output does not depend on the other rows
    transformed with it. Being a low-rank reconstruction, its entries can fall
    slightly outside [0, 1]. ``posterior_correction`` and ``aggregator_input``
    concern the aggregator's probabilities only; they do not change the output
    of :meth:`transform`.

    **Cross-fitting.** The base estimators have seen their training rows, so
    ``fit(X, y).transform(X)`` gives in-sample, over-confident probabilities
    (a deep tree reproduces its training labels) that a final estimator would
    learn to trust too much. :meth:`fit_transform` therefore uses a
    cross-fitting scheme, as :class:`~sklearn.preprocessing.TargetEncoder`
    does, so ``fit(X, y).transform(X)`` does not equal ``fit_transform(X, y)``:
    the base probabilities of each row come from base estimators fitted on
    the other folds of ``cv`` (the out-of-fold matrix that ``fit`` computes
    anyway, as :class:`~sklearn.ensemble.StackingClassifier` does), and the
    fitted model maps them through its fold-in, the same map :meth:`transform`
    applies to new rows. Unlabeled rows (``unlabeled_label``) get the
    probabilities of base estimators fitted on the labeled rows, which never
    see them. Inside a Pipeline, the final estimator is thus trained on what
    it will be applied to: out-of-sample base probabilities, mapped by one
    model. Its cost is that of ``fit``: with ``cv=k``, ``k + 1`` fits of each
    base estimator and one factorization.

    Unlike TargetEncoder, the factorization itself is not refitted per fold.
    It learns ``q x d`` global parameters, like a final estimator in
    stacking, while the base estimators, which can memorize rows, are
    cross-fitted. Refitting it per fold would give the training rows
    features from ``k`` different models (latent coordinates are even defined
    only up to a rotation per model) and the new rows features from another
    one, at ``k + 1`` times the cost.

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
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from skcfe import CFEnsembleTransformer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> cfe = CFEnsembleTransformer(
    ...     [("nb", GaussianNB()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))],
    ...     latent_dim=2, cv=3, random_state=0,
    ... )
    >>> cfe.fit_transform(X, y).shape
    (569, 2)
    >>> cfe.get_feature_names_out().tolist()
    ['cfensembletransformer_nb_1', 'cfensembletransformer_tree_1']
    >>> pipe = make_pipeline(cfe, LogisticRegression()).fit(X, y)
    >>> bool(pipe.score(X, y) > 0.9)
    True
    """

    _parameter_constraints: dict = {
        **BaseCFEnsemble._parameter_constraints,
        "output": [StrOptions({"reconstruction", "factors"})],
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
        output="reconstruction",
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
        self.output = output

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | float | None = None,
            groups: ArrayLike | None = None, **fit_params: Any) -> "CFEnsembleTransformer":
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
        **fit_params : dict
            Other metadata, routed to the base estimators that request it.
            Only available with ``sklearn.set_config(enable_metadata_routing=True)``;
            see scikit-learn's metadata routing user guide
            (https://scikit-learn.org/stable/metadata_routing.html).

        Returns
        -------
        self : CFEnsembleTransformer
            Fitted transformer.
        """
        self._fit_model(X, y, sample_weight, groups, **fit_params)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X: ArrayLike, y: ArrayLike,
                      sample_weight: ArrayLike | float | None = None,
                      groups: ArrayLike | None = None, **fit_params: Any) -> np.ndarray:
        """Fit on all rows and return the cross-fitted transform of ``X``.

        This method uses a cross-fitting scheme so that a downstream
        estimator never trains on in-sample predictions of the base
        estimators; it is the recommended way to transform training data.

        .. note::
            ``fit(X, y).transform(X)`` does not equal ``fit_transform(X, y)``:
            each row's base probabilities come from base estimators fitted on
            the other folds of ``cv``. See the Notes of
            :class:`CFEnsembleTransformer`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, passed to the base estimators as is.
        y : array-like of shape (n_samples,)
            Class labels; rows equal to ``unlabeled_label`` are unlabeled.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Non-negative row weights, as in :meth:`fit`.
        groups : array-like of shape (n_samples,), default=None
            Group labels of the rows for a group-aware ``cv``, as in
            :meth:`fit`.
        **fit_params : dict
            Other metadata (metadata routing only), as in :meth:`fit`.

        Returns
        -------
        X_out : ndarray of shape (n_samples, n_columns) or (n_samples, latent_dim)
            Cross-fitted reconstruction, or factors when ``output='factors'``.
        """
        R, _ = self._fit_model(X, y, sample_weight, groups, **fit_params)
        # R holds the out-of-fold probabilities of the labeled rows and those of
        # the unlabeled rows from base estimators fitted on the labeled rows
        # only: no entry comes from an estimator that saw its row (except with
        # cv='prefit', whose base estimators the user fitted, as documented).
        return self._output(self._fold_in(R))

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Reconstructed probability matrix (or latent factors) of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_out : ndarray of shape (n_samples, n_columns) or (n_samples, latent_dim)
            The reconstruction ``Y X^T`` of the base estimators' probabilities
            (columns named by :meth:`get_feature_names_out`), or the factors
            ``Y`` when ``output='factors'``.
        """
        check_is_fitted(self)
        factors, _ = self._reconstruct(X)
        return self._output(factors)

    def _output(self, factors):
        if self.output == "factors":
            return factors
        return factors @ self.classifier_factors_.T

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> np.ndarray:
        """Names of the output columns.

        ``'<prefix>_<estimator>_<class>'`` for every column of the
        reconstruction (binary problems: the positive class only, one column
        per estimator), ``'<prefix>_factor<i>'`` for the factors; the prefix is
        ``'cfensembletransformer'``.

        %(feature_names_out)s
        """
        prefix = self._feature_names_prefix(input_features)
        if self.output == "factors":
            names = [f"{prefix}_factor{i}" for i in range(self.classifier_factors_.shape[1])]
        else:
            classes = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
            names = [
                f"{prefix}_{name}_{label}" for name in self._model_names() for label in classes
            ]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


fill_doc(CFEnsembleTransformer)
