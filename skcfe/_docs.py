"""Shared docstring sections, written once and filled into both estimators.

:func:`fill_doc` replaces ``%(name)s`` in a class docstring by ``DOCS[name]``,
so a parameter shared by the classifier and the transformer is described
word for word the same in both.
"""

SHARED_PARAMETERS_DOC = """\
estimators : list of (str, estimator) tuples, default=None
        Base classifiers. Each enters through ``predict_proba`` where it has
        one, else through ``decision_function`` (as StackingClassifier's
        ``stack_method='auto'``: LinearSVC, RidgeClassifier, SVC()), whose
        scores a logistic calibrator maps to probabilities without leakage:
        a sigmoid for two classes, a multinomial logistic regression on the
        K scores otherwise, cross-fitted over the folds of ``cv`` as
        :class:`~sklearn.calibration.CalibratedClassifierCV` does (a training
        row's column comes from a calibrator fitted on the other folds'
        out-of-fold scores; new rows use one fitted on all of them). Such an
        estimator needs folds: with ``cv='prefit'`` wrap it in
        :class:`~sklearn.frozen.FrozenEstimator` instead. Regressors and
        estimators with neither method are errors. Any of them can be
        set to ``'drop'`` and their parameters tuned as ``name__param``, as in
        :class:`~sklearn.ensemble.StackingClassifier`. ``None`` uses the
        default set of :func:`default_estimators`: scaled logistic regression,
        Gaussian naive Bayes, a decision tree, a random forest and histogram
        gradient boosting, seeded from ``random_state``. Setting one of their
        parameters (``set_params(forest__max_depth=3)``, or a grid over it)
        makes the default set explicit: ``estimators`` then holds the seeded
        list, so that ``clone`` keeps the change.

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
        base layer once per outer fold. None: no caching.

        The default estimators (``estimators=None``) are seeded from
        ``random_state``: unless it is an int they get new seeds on every
        fit, so the cache never hits (a warning says so). A function among
        the base estimators' parameters (``FunctionTransformer(func)``)
        enters the key by its code, defaults and closure, not by the globals
        it reads; a lambda or a local function cannot be cached (an error
        names it). A cache directory that cannot be written gives a warning
        and an uncached fit."""


SHARED_ATTRIBUTES_DOC = """\
classes_ : ndarray of shape (n_classes,)
        Class labels.

    estimators_ : list of estimators
        Base estimators fitted on all labeled rows ('drop' excluded).

    named_estimators_ : :class:`~sklearn.utils.Bunch`
        Fitted base estimators by name.

    stack_method_ : list of str
        The method of each fitted base estimator whose output enters the
        probability matrix: 'predict_proba' or 'decision_function'.

    calibrators_ : list of estimators or None
        For each fitted base estimator with ``stack_method_`` equal to
        'decision_function', the calibrator fitted on all its out-of-fold
        scores that maps its scores of new rows to probabilities (a
        Pipeline: StandardScaler, then LogisticRegression); None for the
        others.

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


FEATURE_NAMES_DOC = """\
Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the names seen in fit.

        Returns
        -------
        feature_names_out : ndarray of str objects"""


DOCS = {
    "shared_parameters": SHARED_PARAMETERS_DOC,
    "shared_attributes": SHARED_ATTRIBUTES_DOC,
    "feature_names_out": FEATURE_NAMES_DOC,
}


def fill_doc(cls, **extra):
    """Fill ``%(name)s`` from :data:`DOCS` and ``extra`` in the docstrings of ``cls``
    and of the methods it defines; return ``cls``."""
    sections = {**DOCS, **extra}

    def filled(doc):
        for name, text in sections.items():
            doc = doc.replace(f"%({name})s", text)
        return doc

    cls.__doc__ = filled(cls.__doc__)
    for member in vars(cls).values():
        if callable(member) and member.__doc__ and "%(" in member.__doc__:
            member.__doc__ = filled(member.__doc__)
    return cls
