"""The CF-Ensemble objective in numpy: the reference every backend reports.

    L = rho * L_recon + (1 - rho) * L_sup

    L_recon = sum_i w_i sum_u c_iu (r_iu - y_i . x_u)^2 / sum_i w_i sum_u c_iu
              + lambda_reg * (|X|^2 / q + sum_i w_i |y_i|^2 / sum_i w_i)
    L_sup   = sum_{i labeled} s_i FL_gamma(p_i, y_i) / sum_i s_i

``w`` are the sample weights of all rows (a weight of 2 counts a row twice,
exactly like repeating it), ``s`` the sample weights times the class weights
of the labeled rows. The instance factors ``Y`` are the fold-in of the rows
given the classifier factors ``X``, so the objective is a function of ``X``
and the aggregator alone, which is the model that predicts.
"""

import numpy as np


def reconstruction_loss(R, C, Y, X, row_weight, lambda_reg):
    """Confidence-weighted mean squared reconstruction error plus the ridge terms."""
    residual = R - Y @ X.T
    data = np.dot(row_weight, np.sum(C * residual**2, axis=1))
    total_confidence = np.dot(row_weight, C.sum(axis=1))
    ridge = np.sum(X * X) / X.shape[0] + np.dot(row_weight, np.sum(Y * Y, axis=1)) / row_weight.sum()
    return float(data / total_confidence + lambda_reg * ridge)


def combine(rho, reconstruction, supervised):
    """The objective from its two terms."""
    return rho * reconstruction + (1.0 - rho) * supervised
