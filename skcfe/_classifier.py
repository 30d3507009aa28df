"""CFEnsembleClassifier: stacking through collaborative filtering."""

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from ._aggregator import aggregate, raw_to_proba
from ._base import SHARED_ATTRIBUTES_DOC, SHARED_PARAMETERS_DOC, BaseCFEnsemble
from ._posterior import focal_posterior_correction


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

    Parameters
    ----------
    %(shared_parameters)s

    Attributes
    ----------
    %(shared_attributes)s

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

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit the base estimators, the factorization and the aggregator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, passed to the base estimators as is.
        y : array-like of shape (n_samples,)
            Class labels; rows equal to ``unlabeled_label`` are unlabeled.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; passed to every base estimator (and to
            each Pipeline step that accepts them).

        Returns
        -------
        self : CFEnsembleClassifier
            Fitted estimator.
        """
        self._fit_model(X, y, sample_weight)
        return self

    def predict_proba(self, X):
        """Class probabilities of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The corrected posterior when ``posterior_correction=True``, else
            the aggregator's raw output.
        """
        check_is_fitted(self)
        _, R_hat = self._reconstruct(X)
        raw = aggregate(
            R_hat, self.aggregator, self.coef_, self.intercept_, len(self.classes_),
            self.aggregator_input,
        )
        proba = raw_to_proba(raw)
        if self.posterior_correction and self.aggregator == "weighted":
            proba = focal_posterior_correction(
                proba, gamma=self.focal_gamma, class_weight=self.class_weight_
            )
        return proba

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        check_is_fitted(self)
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X):
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

    def predict(self, X):
        """Most probable class of each row of ``X``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


CFEnsembleClassifier.__doc__ = CFEnsembleClassifier.__doc__.replace(
    "%(shared_parameters)s", SHARED_PARAMETERS_DOC
).replace("%(shared_attributes)s", SHARED_ATTRIBUTES_DOC)
