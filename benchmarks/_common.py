"""Shared helpers of the benchmark scripts: base-model work done once, metrics, tables, plots.

Not part of the skcfe package. The scripts import it as ``_common`` (they put
``benchmarks/`` on ``sys.path`` first).

Base estimators dominate the cost of every stacking method, so a split's
base-model work is done exactly once (:func:`base_matrices`): the training
rows' out-of-fold matrix ``R_train`` (``cross_val_predict`` with skcfe's
folds: ``StratifiedKFold(cv)``, unshuffled, over the training rows) and the
matrix ``R_test`` of the base estimators refit on every training row. Every
combiner then works on these two matrices:

- StackingClassifier is ``LogisticRegression()`` on ``R_train`` (binary:
  the class-1 column of each estimator; K classes: all K columns), exactly
  what ``StackingClassifier(stack_method='predict_proba')`` fits;
- soft voting is the mean of ``R_test``'s estimators;
- skcfe is :class:`CachedCFEnsembleClassifier`, which overrides the fit
  pipeline's hook ``_probability_matrix`` to hand back the cached ``R_train``
  instead of cross-validating the base estimators again. Everything after that
  (confidence, factorization, aggregator, fold-in, posterior correction) is
  skcfe's own code.

``bench_quality.py --check`` verifies both shortcuts against the real
``StackingClassifier`` and ``CFEnsembleClassifier`` on a small data set.
"""

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import label_binarize

import skcfe
from skcfe import CFEnsembleClassifier

# Probabilities are clipped to [_LOGIT_EPS, 1 - _LOGIT_EPS] before the logit of
# the "LR on logit(R)" baseline: trees and forests output exact 0 and 1.
LOGIT_EPS = 1e-4
# Equal-width bins of the expected calibration error.
ECE_BINS = 15


# --------------------------------------------------------------------------
# machine and environment
# --------------------------------------------------------------------------


def machine_info():
    """CPU model, cores, RAM and library versions, for the header of every result."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gb = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    ram_gb = round(int(line.split()[1]) / 1024**2, 1)
                    break
    except OSError:
        pass
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()})
    except ImportError:  # informative only
        blas = ["threadpoolctl not installed"]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "skcfe": skcfe.__version__,
        "threadpools": blas,
    }


def machine_line(info):
    return (
        f"{info['date']}; {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GiB RAM; "
        f"Python {info['python']}, numpy {info['numpy']}, scikit-learn {info['scikit-learn']}, "
        f"skcfe {info['skcfe']}"
    )


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------


def expected_calibration_error(y, proba, n_bins=ECE_BINS):
    """Expected calibration error with ``n_bins`` equal-width bins on [0, 1].

    ``ECE = sum_b (n_b / n) |mean(p in b) - mean(y in b)|``.

    Binary problems: calibration of ``P(y = 1)`` (the positive, rare class),
    which is what matters for imbalanced data; the top-label variant would be
    dominated by the easy negatives. K > 2 classes: top-label ECE (confidence
    of the predicted class against its accuracy), the usual multiclass form.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Encoded labels ``0 .. K - 1``.
    proba : ndarray of shape (n, K)
    n_bins : int, default=15

    Returns
    -------
    ece : float
    """
    proba = np.asarray(proba, dtype=float)
    y = np.asarray(y)
    if proba.shape[1] == 2:
        conf, hit = proba[:, 1], (y == 1).astype(float)
    else:
        pred = np.argmax(proba, axis=1)
        conf, hit = proba[np.arange(len(y)), pred], (pred == y).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    gap = np.abs(np.bincount(bins, conf, n_bins) - np.bincount(bins, hit, n_bins))
    return float(gap.sum() / len(y))


def reliability_curve(y, proba, n_bins=ECE_BINS):
    """Mean predicted probability, observed frequency and count per bin (binary: class 1)."""
    proba = np.asarray(proba, dtype=float)
    if proba.shape[1] == 2:
        conf, hit = proba[:, 1], (np.asarray(y) == 1).astype(float)
    else:
        pred = np.argmax(proba, axis=1)
        conf, hit = proba[np.arange(len(y)), pred], (pred == np.asarray(y)).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    keep = count > 0
    mean_p = np.bincount(bins, conf, n_bins)[keep] / count[keep]
    freq = np.bincount(bins, hit, n_bins)[keep] / count[keep]
    return mean_p, freq, count[keep]


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
    labels = np.arange(proba.shape[1])
    if proba.shape[1] == 2:
        return float(brier_score_loss(y, proba[:, 1]))
    return float(brier_score_loss(y, proba, labels=labels))


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


METRICS = ("pr_auc", "roc_auc", "log_loss", "brier", "ece", "fit_s", "predict_s")
METRIC_LABELS = {
    "pr_auc": "PR-AUC",
    "roc_auc": "ROC-AUC",
    "log_loss": "log loss",
    "brier": "Brier",
    "ece": "ECE",
    "fit_s": "fit s",
    "predict_s": "predict s",
}
# True where larger is better.
HIGHER_BETTER = {"pr_auc": True, "roc_auc": True, "log_loss": False, "brier": False, "ece": False,
                 "fit_s": False, "predict_s": False}


# --------------------------------------------------------------------------
# base-model work, once per split
# --------------------------------------------------------------------------


def proba_columns(proba, n_classes):
    """Columns of R from one estimator's predict_proba (binary: class 1 only)."""
    proba = np.asarray(proba, dtype=float)
    return proba[:, 1:] if n_classes == 2 else proba


def skcfe_folds(y_train, cv=5):
    """The folds skcfe (and StackingClassifier) use for an int ``cv``: unshuffled StratifiedKFold."""
    return list(StratifiedKFold(n_splits=cv).split(np.zeros(len(y_train)), y_train))


@dataclass
class BaseMatrices:
    """A split's base-model work: out-of-fold and refit probability matrices, with timings.

    Attributes
    ----------
    R_train : ndarray of shape (n_train, q)
        Out-of-fold probabilities of the training rows.
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

    def estimator_columns(self, j):
        """Columns of R that belong to estimator ``j``."""
        width = 1 if self.n_classes == 2 else self.n_classes
        return slice(j * width, (j + 1) * width)

    def estimator_proba(self, R, j):
        """(n, K) probabilities of estimator ``j`` from a matrix laid out like R."""
        block = R[:, self.estimator_columns(j)]
        return np.column_stack([1.0 - block[:, 0], block[:, 0]]) if self.n_classes == 2 else block

    def to_npz(self, path):
        np.savez_compressed(
            path, R_train=self.R_train, R_test=self.R_test, y_train=self.y_train,
            y_test=self.y_test, n_classes=self.n_classes,
            meta=json.dumps({"names": self.names, "oof_s": self.oof_s,
                             "refit_s": self.refit_s, "predict_s": self.predict_s}),
        )

    @classmethod
    def from_npz(cls, path):
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            return cls(data["R_train"], data["R_test"], data["y_train"], data["y_test"],
                       int(data["n_classes"]), meta["names"], meta["oof_s"], meta["refit_s"],
                       meta["predict_s"])


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
        train_blocks.append(proba_columns(oof, n_classes))
        test_blocks.append(proba_columns(test, n_classes))
        if keep_estimators:
            fitted.append(model)
    return BaseMatrices(
        np.hstack(train_blocks), np.hstack(test_blocks), np.asarray(y_train), np.asarray(y_test),
        n_classes, [name for name, _ in estimators], oof_s, refit_s, predict_s,
        fitted if keep_estimators else None,
    )


# --------------------------------------------------------------------------
# skcfe on a cached matrix
# --------------------------------------------------------------------------


class ColumnProba(ClassifierMixin, BaseEstimator):
    """A "base estimator" whose input is the probability matrix itself.

    Fitted, ``predict_proba(R)`` returns estimator ``index``'s probabilities
    from the columns of ``R`` (binary: one column; K classes: K columns), so
    that skcfe's refit matrix of a new block of ``R`` is that block. It lets
    skcfe run on a precomputed matrix (R given directly, or a cached split)
    through its public ``predict_proba``.
    """

    def __init__(self, index=0, n_classes=2):
        self.index = index
        self.n_classes = n_classes

    def fit(self, R, y=None):
        self.n_features_in_ = np.asarray(R).shape[1]
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, R):
        R = np.asarray(R, dtype=float)
        if self.n_classes == 2:
            p = R[:, self.index]
            return np.column_stack([1.0 - p, p])
        width = self.n_classes
        return R[:, self.index * width : (self.index + 1) * width]


class CachedCFEnsembleClassifier(CFEnsembleClassifier):
    """CFEnsembleClassifier whose out-of-fold matrix comes from a cache.

    Set the cache with :meth:`use_matrix` before ``fit``: the training rows'
    out-of-fold matrix and the base estimators fitted on every training row.
    ``fit`` then skips the base models' cross-validation and refit (the only
    thing the hook ``_probability_matrix`` does); all of skcfe's own work runs
    unchanged. Use :func:`fit_on_matrix` for a matrix without base estimators.
    """

    def use_matrix(self, R_train, fitted_estimators):
        self._cached_matrix = (np.asarray(R_train, dtype=float), list(fitted_estimators))
        return self

    def _probability_matrix(self, named, X, y_encoded, labeled, base_weight):
        R, fitted = self._cached_matrix
        if R.shape[0] != len(labeled) or not labeled.all() or len(fitted) != len(named):
            raise ValueError("The cached matrix does not match this fit's rows or estimators.")
        self.estimators_ = fitted
        return R.copy()


def matrix_estimators(n_estimators, n_classes):
    """(name, ColumnProba) pairs for a matrix of ``n_estimators`` estimators."""
    return [(f"e{j}", ColumnProba(j, n_classes)) for j in range(n_estimators)]


def fit_on_matrix(R_train, y_train, n_classes, **params):
    """Fit skcfe on a probability matrix given directly (no base estimators).

    Predict with ``model.predict_proba(R_new)``.
    """
    width = 1 if n_classes == 2 else n_classes
    m = R_train.shape[1] // width
    estimators = matrix_estimators(m, n_classes)
    fitted = [clone(est).fit(R_train, y_train) for _, est in estimators]
    model = CachedCFEnsembleClassifier(estimators, **params).use_matrix(R_train, fitted)
    return model.fit(R_train, y_train)


# --------------------------------------------------------------------------
# the other combiners on a cached matrix
# --------------------------------------------------------------------------


def as_proba(p1_or_proba):
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


# --------------------------------------------------------------------------
# summaries and tables
# --------------------------------------------------------------------------


def summarize(values):
    """Median, first and third quartile of a list of numbers (NaN-free)."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if values.size == 0:
        return {"median": float("nan"), "q1": float("nan"), "q3": float("nan"), "n": 0}
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(values.size)}


def fmt(value, digits=4):
    if value is None or not np.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def fmt_summary(s, digits=4):
    """``median (IQR)`` in a compact form."""
    if s["n"] == 0:
        return "n/a"
    return f"{fmt(s['median'], digits)} ({fmt(s['q3'] - s['q1'], digits if s['q3'] - s['q1'] < 1 else 2)})"


def markdown_table(header, rows, align=None):
    """A GitHub markdown table from a header and rows of strings."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path, payload, compact=False):
    """JSON of a result; ``compact``: floats to 6 significant digits, no indentation."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compact:
        payload = _rounded(payload)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=None if compact else 1, default=_json_default)


def _rounded(obj):
    if isinstance(obj, float):
        return float(f"{obj:.6g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj))


def cache_dir():
    """Where base matrices are cached between runs (``SKCFE_BENCH_CACHE`` overrides)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skcfe-benchmarks"
    return Path(os.environ.get("SKCFE_BENCH_CACHE", default))


class Progress:
    """Elapsed-time progress lines on stdout."""

    def __init__(self, quiet=False):
        self.start = time.perf_counter()
        self.quiet = quiet

    def __call__(self, message):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", flush=True)


# --------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n):
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    return rows, cols


def plot_pr_curves(curves, path, title="Precision-recall curves (held-out split, seed 0)"):
    """curves: {dataset: {model: (y, proba)}}; K > 2 classes: micro-averaged curve."""
    plt = _pyplot()
    rows, cols = _grid(len(curves))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (dataset, models) in zip(axes.ravel(), curves.items()):
        for label, (y, proba) in models.items():
            if proba.shape[1] == 2:
                precision, recall, _ = precision_recall_curve(y, proba[:, 1])
                ap = pr_auc(y, proba)
            else:
                Y = label_binarize(y, classes=np.arange(proba.shape[1]))
                precision, recall, _ = precision_recall_curve(Y.ravel(), proba.ravel())
                ap = float(average_precision_score(Y, proba, average="micro"))
            ax.plot(recall, precision, lw=1.2, label=f"{label} ({ap:.3f})")
        kind = "" if next(iter(models.values()))[1].shape[1] == 2 else " (micro-avg)"
        ax.set_title(dataset + kind, fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=6, loc="lower left")
    for ax in axes.ravel()[len(curves):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_reliability(diagrams, path, title="Reliability (held-out split, seed 0, 15 bins)",
                     min_count=5):
    """diagrams: {dataset: {label: (y, proba)}}; binary: P(y=1), K classes: top label.

    Bins with fewer than ``min_count`` rows are not drawn.
    """
    plt = _pyplot()
    rows, cols = _grid(len(diagrams))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (dataset, models) in zip(axes.ravel(), diagrams.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        for label, (y, proba) in models.items():
            mean_p, freq, count = reliability_curve(y, proba)
            # Bins with a handful of rows are noise; ECE still counts every row.
            keep = count >= min_count
            ece = expected_calibration_error(y, proba)
            ax.plot(mean_p[keep], freq[keep], marker="o", ms=3, lw=1.1,
                    label=f"{label} (ECE {ece:.3f})")
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[len(diagrams):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_weights(weights, path, title="Aggregator weights per base estimator (seed 0)"):
    """weights: {dataset: {model: (names, values)}} as grouped bars."""
    plt = _pyplot()
    rows, cols = _grid(len(weights))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (dataset, models) in zip(axes.ravel(), weights.items()):
        n_models = len(models)
        width = 0.8 / n_models
        names = None
        for k, (label, (names, values)) in enumerate(models.items()):
            x = np.arange(len(values)) + (k - (n_models - 1) / 2) * width
            ax.bar(x, values, width=width, label=label)
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels(names, rotation=30, fontsize=7)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(dataset, fontsize=9)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(weights):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
