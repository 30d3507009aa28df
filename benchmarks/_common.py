"""Shared plumbing of the benchmark scripts: the base layer done once per split, metrics, machine.

Not part of the skcfe package. The scripts import it as ``_common`` (they put
``benchmarks/`` on ``sys.path`` first).

Base estimators dominate the cost of every stacking method, so a split's
base-model work is done exactly once (:func:`base_matrices`, cached by the
scripts with ``joblib.Memory``): the training rows' out-of-fold matrix
``R_train`` (``cross_val_predict`` with skcfe's folds: ``StratifiedKFold(cv)``,
unshuffled, over the training rows) and the matrix ``R_test`` of the base
estimators refit on every training row. Every combiner then works on these two
matrices:

- StackingClassifier is ``LogisticRegression()`` on ``R_train`` (binary:
  the class-1 column of each estimator; K classes: all K columns), exactly
  what ``StackingClassifier(stack_method='predict_proba')`` fits;
- soft voting is the mean of ``R_test``'s estimators;
- skcfe is ``CFEnsembleClassifier(estimators='precomputed')`` fitted on
  ``R_train`` and predicting ``R_test``: everything after the base layer
  (confidence, factorization, combiner, fold-in, posterior correction) is
  skcfe's own public code.

``bench_quality.py --check`` verifies both shortcuts against the real
``StackingClassifier`` and ``CFEnsembleClassifier`` on a small data set.
"""

import os
import platform
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import label_binarize
from threadpoolctl import threadpool_info

import skcfe

# Probabilities are clipped to [LOGIT_EPS, 1 - LOGIT_EPS] before the logit of
# the "LR on logit(R)" baseline: trees and forests output exact 0 and 1.
LOGIT_EPS = 1e-4
# Equal-width bins of the expected calibration error.
ECE_BINS = 15


# -- machine and environment --------------------------------------------------------


def machine_info():
    """Date, CPU, cores, RAM, library versions (as sklearn.show_versions) and BLAS/OpenMP pools."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": joblib.cpu_count(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: installed(name) for name in ("numpy", "scipy", "scikit-learn", "pandas",
                                              "joblib", "threadpoolctl", "torch")},
        "skcfe": skcfe.__version__,
        "threadpools": sorted({f"{p['internal_api']} {p['version'] or ''}".strip()
                               for p in threadpool_info()}),
    }


def machine_line(info):
    """One line of :func:`machine_info` for a report's header."""
    blas = f"; BLAS/OpenMP: {', '.join(info['threadpools'])}" if info.get("threadpools") else ""
    return (
        f"{info['date']}; {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GiB RAM; "
        f"Python {info['python']}, numpy {info['numpy']}, scikit-learn {info['scikit-learn']}, "
        f"skcfe {info['skcfe']}{blas}"
    )


def cache_dir():
    """Where base matrices are cached between runs (``SKCFE_BENCH_CACHE`` overrides)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skcfe-benchmarks"
    return Path(os.environ.get("SKCFE_BENCH_CACHE", default))


# -- metrics --------------------------------------------------------------------------


def calibration_target(y, proba):
    """What calibration is measured on: binary ``P(y = 1)``; K classes the top label.

    Binary problems: the positive, rare class, which is what matters for
    imbalanced data (the top-label variant would be dominated by the easy
    negatives). K > 2 classes: the confidence of the predicted class against
    whether it is right. Returns ``(hit, confidence)`` for
    ``sklearn.calibration.calibration_curve``.
    """
    proba = np.asarray(proba, dtype=float)
    y = np.asarray(y)
    if proba.shape[1] == 2:
        return (y == 1).astype(float), proba[:, 1]
    pred = np.argmax(proba, axis=1)
    return (pred == y).astype(float), proba[np.arange(len(y)), pred]


def expected_calibration_error(y, proba, n_bins=ECE_BINS):
    """``ECE = sum_b (n_b / n) |mean(p in b) - mean(y in b)|`` over equal-width bins on [0, 1].

    The bins are ``floor(p * n_bins)``: a probability on an edge (trees' 0.2,
    0.4, ...) counts in the upper bin, where calibration_curve puts it in the
    lower one; the recorded results keep this binning.
    """
    hit, conf = calibration_target(y, proba)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    gap = np.abs(np.bincount(bins, conf, n_bins) - np.bincount(bins, hit, n_bins))
    return float(gap.sum() / len(hit))


def ece_excess(y, proba, n_bins=ECE_BINS, draws=200, seed=0):
    """ECE minus the ECE the same predictions would show if they were calibrated.

    With few rows per bin, ECE is positive even for a perfectly calibrated
    model, and more so for sharp predictions that spread rows over sparse
    bins (a rare class). The floor is the mean ECE over ``draws`` outcomes
    drawn from the predictions themselves (``hit ~ Bernoulli(confidence)``);
    what is left estimates miscalibration beyond that binning noise
    (negative: within it).
    """
    _, conf = calibration_target(y, proba)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    predicted = np.bincount(bins, conf, n_bins)
    rng = np.random.default_rng(seed)
    floor = 0.0
    for _ in range(draws):
        drawn = (rng.random(len(conf)) < conf).astype(float)
        floor += np.abs(predicted - np.bincount(bins, drawn, n_bins)).sum()
    return expected_calibration_error(y, proba, n_bins) - floor / (draws * len(conf))


def pr_auc(y, proba):
    """PR-AUC as average precision: binary of class 1; K classes: macro one-vs-rest."""
    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] == 2:
        return float(average_precision_score(y, proba[:, 1]))
    Y = label_binarize(y, classes=np.arange(proba.shape[1]))
    return float(average_precision_score(Y, proba, average="macro"))


def roc_auc(y, proba):
    """ROC-AUC: binary of class 1; K classes: macro one-vs-rest."""
    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def brier(y, proba):
    """Brier score: binary ``mean (p1 - y)^2``; K classes ``mean sum_k (p_k - y_k)^2``."""
    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] == 2:
        return float(brier_score_loss(y, proba[:, 1]))
    return float(brier_score_loss(y, proba, labels=np.arange(proba.shape[1])))


def scores(y, proba):
    """Every quality metric of one prediction."""
    proba = np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return {
        "pr_auc": pr_auc(y, proba),
        "roc_auc": roc_auc(y, proba),
        "log_loss": float(log_loss(y, proba, labels=np.arange(proba.shape[1]))),
        "brier": brier(y, proba),
        "ece": expected_calibration_error(y, proba),
    }


def median_iqr(frame, by, metric, digits):
    """``median (IQR)`` of column ``metric`` per group of ``by``, as strings for a table."""
    groups = frame.groupby(by, sort=False)[metric]
    med, iqr = groups.median(), groups.quantile(0.75) - groups.quantile(0.25)
    cell = f"{{:.{digits}f}}".format
    return (med.map(cell) + " (" + iqr.map(cell) + ")").where(med.notna(), "n/a")


# -- base-model work, once per split ------------------------------------------------


def skcfe_folds(y_train, cv=5):
    """skcfe's (and StackingClassifier's) folds for an int ``cv``: unshuffled StratifiedKFold."""
    return list(StratifiedKFold(n_splits=cv).split(np.zeros(len(y_train)), y_train))


@dataclass
class BaseMatrices:
    """A split's base-model work: out-of-fold and refit probability matrices, with timings.

    Attributes
    ----------
    R_train : ndarray of shape (n_train, q)
        Out-of-fold probabilities of the training rows (skcfe's precomputed layout).
    R_test : ndarray of shape (n_test, q)
        Probabilities of the test rows from the estimators refit on all training rows.
    y_train, y_test : ndarray of int
    n_classes : int
    names : list of str
        Base estimator names, in column order.
    oof_s, refit_s, predict_s : dict of str to float
        Seconds per base estimator: cross-validation, refit, predicting the test rows.
    estimators : list or None
        The refit estimators, when kept.
    """

    R_train: np.ndarray
    R_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    n_classes: int
    names: list
    oof_s: dict = field(default_factory=dict)
    refit_s: dict = field(default_factory=dict)
    predict_s: dict = field(default_factory=dict)
    estimators: list | None = None

    @property
    def n_estimators(self):
        return len(self.names)

    @property
    def base_fit_s(self):
        """What every stacking method pays before combining: all OOF fits plus all refits."""
        return sum(self.oof_s.values()) + sum(self.refit_s.values())

    @property
    def base_predict_s(self):
        return sum(self.predict_s.values())

    def estimator_proba(self, R, j):
        """(n, K) probabilities of estimator ``j`` from a matrix laid out like R."""
        width = 1 if self.n_classes == 2 else self.n_classes
        return as_proba(R[:, j]) if width == 1 else R[:, j * width:(j + 1) * width]


def base_matrices(estimators, X_train, y_train, X_test, y_test, *, cv=5, keep_estimators=False):
    """Out-of-fold matrix of the training rows and refit matrix of the test rows.

    The folds are those skcfe uses for ``cv=cv`` (and StackingClassifier):
    unshuffled ``StratifiedKFold`` over the training rows, the same for every
    estimator. ``y`` must be encoded ``0 .. K - 1``.
    """
    n_classes = int(np.max(y_train)) + 1
    folds = skcfe_folds(y_train, cv)
    train_blocks, test_blocks, fitted = [], [], []
    oof_s, refit_s, predict_s = {}, {}, {}

    def columns(proba):  # binary: class 1 only, as skcfe's precomputed layout
        proba = np.asarray(proba, dtype=float)
        return proba[:, 1:] if n_classes == 2 else proba

    for name, est in estimators:
        start = time.perf_counter()
        oof = cross_val_predict(clone(est), X_train, y_train, cv=folds, method="predict_proba")
        oof_s[name] = time.perf_counter() - start
        start = time.perf_counter()
        model = clone(est).fit(X_train, y_train)
        refit_s[name] = time.perf_counter() - start
        start = time.perf_counter()
        test = model.predict_proba(X_test)
        predict_s[name] = time.perf_counter() - start
        train_blocks.append(columns(oof))
        test_blocks.append(columns(test))
        if keep_estimators:
            fitted.append(model)
    return BaseMatrices(
        np.hstack(train_blocks), np.hstack(test_blocks), np.asarray(y_train), np.asarray(y_test),
        n_classes, [name for name, _ in estimators], oof_s, refit_s, predict_s,
        fitted if keep_estimators else None,
    )


# -- the other combiners on the base matrices ----------------------------------------


def as_proba(p1_or_proba):
    """(n, 2) probabilities from P(y = 1); (n, K) passes through."""
    p = np.asarray(p1_or_proba, dtype=float)
    return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p


def stacking_proba(R_train, y_train, R_test):
    """StackingClassifier's final estimator (``LogisticRegression()``) on the cached matrices."""
    start = time.perf_counter()
    lr = LogisticRegression().fit(R_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = lr.predict_proba(R_test)
    return proba, fit_s, time.perf_counter() - start, lr


def logit_features(R):
    p = np.clip(R, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def logit_stacking_proba(R_train, y_train, R_test):
    """``LogisticRegression()`` on the logit of the (clipped) out-of-fold probabilities."""
    start = time.perf_counter()
    lr = LogisticRegression(max_iter=1000).fit(logit_features(R_train), y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = lr.predict_proba(logit_features(R_test))
    return proba, fit_s, time.perf_counter() - start, lr


def voting_proba(base, R):
    """Soft voting: the mean of the base estimators' probabilities."""
    return np.mean([base.estimator_proba(R, j) for j in range(base.n_estimators)], axis=0)
