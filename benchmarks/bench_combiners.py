"""Which combiner to trust: skcfe against what a careful user would try.

Every combiner sees the same base-layer matrix on the same split: the
training rows' out-of-fold probabilities of ``skcfe.default_estimators(seed)``
(skcfe's folds: unshuffled 5-fold StratifiedKFold) and the test rows'
probabilities from the estimators refit on every training row. 20 stratified
70/30 splits per data set; differences are paired per split.

Run::

    python benchmarks/bench_combiners.py            # 20 splits, every data set
    python benchmarks/bench_combiners.py --quick    # 5 splits, a few data sets
    python benchmarks/bench_combiners.py --datasets cm1 default --first-split 20 --splits 10 \
        --out combiners_fresh                       # splits no design decision saw
    python benchmarks/bench_combiners.py --timing [--timing-jobs 2 | --timing-default-threads]

The base layer is cached with joblib.Memory in ``~/.cache/skcfe-benchmarks``.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Memory, Parallel, delayed
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from datasets import KEEL_BINARY, KEEL_MULTICLASS
from datasets import load as load_real

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe._selection import (
    _log_proba_blocks,
    fit_log_linear_pool,
    get_scorer,
    greedy_selection,
    model_proba,
    pool_proba,
)
from skcfe.datasets import make_imbalanced_classification

HERE = Path(__file__).resolve().parent
TEST_SIZE = 0.3
SUITE_BINARY = ("satimage", "default", "flights", "breast_cancer",
                "synth 1% hard", "synth 5% hard", "synth 10% hard")
BINARY = KEEL_BINARY + SUITE_BINARY
MULTICLASS = ("digits",) + KEEL_MULTICLASS
QUICK = ("pc1", "yeast4", "satimage", "vehicle")
FLIGHTS_ROWS = 20_000
SYNTH_SEED = 20240
memory = Memory(C.cache_dir() / "combiners", verbose=0)


def load_dataset(name):
    if name.startswith("synth"):
        rate = int(name.split()[1].rstrip("%")) / 100
        data = make_imbalanced_classification(10_000, 20, positive_rate=rate, class_sep=1.0,
                                              random_state=SYNTH_SEED)
        return data.X, data.y
    kw = {"max_rows": FLIGHTS_ROWS} if name == "flights" else {}
    X, y, _ = load_real(name, **kw)
    return X, y


@memory.cache
def base_layer(name, seed):
    """The split's base matrices (``_common.BaseMatrices``), computed once and cached."""
    X, y = load_dataset(name)
    train, test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y,
                                   random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        return C.base_matrices(default_estimators(seed), X[train], y[train], X[test], y[test])


# ---------------------------------------------------------------------------
# the combiners, each a function of one split's base matrices
# ---------------------------------------------------------------------------


def _probas(base, R):
    return np.stack([model_proba(R, base.n_classes, j) for j in range(base.n_estimators)])


def best_single(base):
    """The base model with the best out-of-fold score (PR-AUC binary, log loss K classes)."""
    score = get_scorer(None, base.n_classes)
    w = np.ones(len(base.y_train))
    oof = [score(base.y_train, p, w) for p in _probas(base, base.R_train)]
    return _probas(base, base.R_test)[int(np.argmax(oof))]


def greedy(base):
    """Greedy ensemble selection (Caruana et al. 2004) on the out-of-fold matrix."""
    score = get_scorer(None, base.n_classes)
    counts = greedy_selection(_probas(base, base.R_train), base.y_train,
                              np.ones(len(base.y_train)), score)
    return np.tensordot(counts / counts.sum(), _probas(base, base.R_test), axes=1)


def nonneg_logit(base):
    """Non-negative logit stacking (H2O's default metalearner: GLM with w >= 0)."""
    w, b = fit_log_linear_pool(_log_proba_blocks(base.R_train, base.n_classes), base.y_train,
                               np.ones(len(base.y_train)), base.n_classes)
    return pool_proba(_log_proba_blocks(base.R_test, base.n_classes), w, b, base.n_classes)


def skcfe(base, seed, **params):
    clf = CFEnsembleClassifier("precomputed", random_state=seed, **params)
    start = time.perf_counter()
    clf.fit(base.R_train, base.y_train)
    return clf.predict_proba(base.R_test), clf.combiner_, time.perf_counter() - start


RIVALS = {
    "stacking": lambda b: C.stacking_proba(b.R_train, b.y_train, b.R_test)[0],
    "LR on logit(R)": lambda b: C.logit_stacking_proba(b.R_train, b.y_train, b.R_test)[0],
    "best single (OOF)": best_single,
    "greedy selection": greedy,
    "nonneg logit": nonneg_logit,
    "soft voting": lambda b: C.voting_proba(b, b.R_test),
}


def evaluate(name, seed):
    """Every combiner's scores on one split (one row per combiner)."""
    base = base_layer(name, seed)
    rows = []

    def record(model, proba, **extra):
        proba = np.clip(proba, 0.0, 1.0)
        proba = proba / proba.sum(axis=1, keepdims=True)
        metrics = C.scores(base.y_test, proba)
        metrics["accuracy"] = accuracy_score(base.y_test, proba.argmax(axis=1))
        metrics["ece_excess"] = C.ece_excess(base.y_test, proba)
        rows.append({"dataset": name, "split": seed, "model": model, **metrics, **extra})

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for model, rival in RIVALS.items():
            record(model, rival(base))
        proba, chosen, fit_s = skcfe(base, seed)
        record("skcfe default", proba, chosen=chosen, fit_s=fit_s)
        proba, _, fit_s = skcfe(base, seed, combiner="cf")
        record("skcfe cf", proba, fit_s=fit_s)
    return rows


# ---------------------------------------------------------------------------
# paired differences and the report
# ---------------------------------------------------------------------------

LOWER_BETTER = {"log_loss", "brier", "ece", "ece_excess"}


def paired(frame, metric, ours="skcfe default"):
    """Per data set and rival: mean, SE, median of (ours - rival) and ours' wins."""
    wide = frame.pivot_table(index=["dataset", "split"], columns="model", values=metric)
    out = []
    for rival in wide.columns.drop(ours):
        diff = (wide[ours] - wide[rival]).groupby(level="dataset")
        sign = -1 if metric in LOWER_BETTER else 1
        wins = (sign * (wide[ours] - wide[rival]) >= 0).groupby(level="dataset").sum()
        stats = pd.DataFrame({"mean": diff.mean(), "se": diff.std() / np.sqrt(diff.count()),
                              "median": diff.median(), "wins": wins, "n": diff.count()})
        stats["rival"] = rival
        out.append(stats.reset_index())
    table = pd.concat(out, ignore_index=True)
    sign = -1 if metric in LOWER_BETTER else 1
    table["z"] = sign * table["mean"] / table["se"].replace(0, np.nan)
    return table


def cell(row):
    return (f"{row['mean']:+.4f} ({row['se']:.4f}) med {row['median']:+.4f} "
            f"[{int(row['wins'])}/{int(row['n'])}]")


def report(frame, names):
    """Markdown: PR-AUC differences (binary), calibration, multiclass, choices."""
    lines = [f"# Combiner benchmark ({C.machine_line(C.machine_info())})", "",
             "Paired differences of skcfe default minus each rival over the splits: "
             "mean (SE), median [splits where skcfe is at least as good]. Positive is better for "
             "PR-AUC and accuracy; for Brier, ECE and log loss negative is better. ece_excess is "
             "ECE minus the ECE the same predictions would show if calibrated (their binning "
             "noise, larger for sharper predictions).", ""]
    binary = frame[frame.dataset.isin([n for n in names if n in BINARY])]
    multi = frame[frame.dataset.isin([n for n in names if n in MULTICLASS])]
    for title, part, metrics in (("Binary", binary, ("pr_auc", "brier", "ece", "ece_excess")),
                                 ("Multiclass", multi, ("log_loss", "accuracy"))):
        if part.empty:
            continue
        for metric in metrics:
            table = paired(part, metric)
            wide = table.assign(cell=table.apply(cell, axis=1)).pivot(
                index="dataset", columns="rival", values="cell")
            lines += [f"## {title}: {metric}", "", wide.to_markdown(), ""]
        means = part.pivot_table(index="dataset", columns="model", values=metrics[0])
        lines += [f"## {title}: mean {metrics[0]}", "", means.to_markdown(floatfmt=".4f"), ""]
    lines += ["## Verdict (the issue's goals)", "", *verdict(binary, multi), ""]
    choices = frame[frame.model == "skcfe default"].groupby("dataset")["chosen"].agg(
        lambda c: ", ".join(f"{k} {v}" for k, v in c.value_counts().items()))
    lines += ["## What skcfe default chose (splits)", "", choices.to_markdown(), ""]
    return "\n".join(lines)


def verdict(binary, multi):
    """Where skcfe default is worse than a rival beyond 2 SE, and its wins over stacking."""
    out = []
    if not binary.empty:
        table = paired(binary, "pr_auc")
        losses = table[table.z < -2]
        wins = table[(table.rival == "stacking") & (table.z > 2)]
        out.append(f"- PR-AUC above StackingClassifier's by more than 2 SE on {len(wins)} of "
                   f"{binary.dataset.nunique()} binary data sets: {', '.join(wins.dataset)}.")
        out.append("- PR-AUC below a rival's by more than 2 SE: " + (
            "; ".join(f"{r.dataset} vs {r.rival} {r['mean']:+.4f} (SE {r.se:.4f})"
                      for _, r in losses.iterrows()) or "none") + ".")
    checks = [("", binary, m) for m in ("brier", "ece", "ece_excess")]
    checks += [("Multiclass ", multi, m) for m in ("log_loss", "accuracy")]
    for prefix, part, metric in checks:
        if part.empty:
            continue
        table = paired(part, metric)
        worse = table[(table.rival == "stacking") & (table.z < -2)]
        out.append(f"- {prefix}{metric} worse than StackingClassifier's beyond 2 SE: " + (
            "; ".join(f"{r.dataset} {r['mean']:+.4f} (SE {r.se:.4f})"
                      for _, r in worse.iterrows()) or "none") + ".")
    return out


def plot_paired(frame, path, xlabel, ylabel=None):
    """Paired PR-AUC difference against each rival per ``dataset`` row label, mean with 2 SE bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = paired(frame, "pr_auc")
    rivals = list(dict.fromkeys(table.rival))
    datasets = list(dict.fromkeys(frame.dataset))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(datasets) * 1.2 + 1.5))
    for k, rival in enumerate(rivals):
        part = table[table.rival == rival].set_index("dataset").loc[datasets]
        y = np.arange(len(datasets)) + (k - len(rivals) / 2) * 0.1
        ax.errorbar(part["mean"], y, xerr=2 * part["se"], fmt="o", ms=3, label=rival)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(np.arange(len(datasets)), datasets)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(frame, path):
    """The binary data sets' paired PR-AUC differences (:func:`plot_paired`)."""
    binary = frame[frame.dataset.isin(BINARY)]
    if not binary.empty:
        plot_paired(binary, path, "PR-AUC: skcfe default minus rival (mean, 2 SE)")


TIMING = ("ada", "satimage", "page-blocks0", "vehicle", "digits")


def timing(names, repeats=3, n_jobs=None, threads=1):
    """Fit seconds of StackingClassifier and skcfe's default on the same data, same estimators.

    ``n_jobs`` goes to both (base estimators; skcfe's selection too); BLAS
    and OpenMP stay at ``threads`` threads (None: as the machine sets them,
    what a user gets by default).
    """
    from sklearn.ensemble import StackingClassifier

    rows = []
    for name in names:
        X, y = load_dataset(name)
        for run in range(repeats):
            for label, model in (
                ("stacking", StackingClassifier(default_estimators(0), cv=5, n_jobs=n_jobs)),
                ("skcfe default", CFEnsembleClassifier(random_state=0, n_jobs=n_jobs)),
            ):
                with warnings.catch_warnings(), threadpool_limits(threads):
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    model.fit(X, y)
                    rows.append({"dataset": name, "run": run, "model": label,
                                 "fit_s": time.perf_counter() - start})
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index="dataset", columns="model", values="fit_s", aggfunc="median")
    # Each run fits both back to back: the median of the runs' own ratios drifts less
    # with the machine's load than a ratio of medians.
    runs = frame.pivot_table(index=["dataset", "run"], columns="model", values="fit_s")
    table["ratio"] = (runs["skcfe default"] / runs["stacking"]).groupby(level="dataset").median()
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--splits", type=int, default=None)
    parser.add_argument("--first-split", type=int, default=0,
                        help="seed of the first split (later ones: fresh splits)")
    parser.add_argument("--out", default=None, help="results stem (default combiners)")
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--base-only", action="store_true")
    parser.add_argument("--report", action="store_true",
                        help="rewrite the table and plot from the saved CSV")
    parser.add_argument("--timing", action="store_true",
                        help="only the fit-time comparison with StackingClassifier")
    parser.add_argument("--timing-jobs", type=int, default=None,
                        help="n_jobs of both estimators in --timing (default: one job)")
    parser.add_argument("--timing-default-threads", action="store_true",
                        help="--timing with BLAS and OpenMP threads as the machine sets them")
    parser.add_argument("--timing-repeats", type=int, default=3,
                        help="fits of each estimator per data set in --timing")
    args = parser.parse_args(argv)
    names = args.datasets or (QUICK if args.quick else BINARY + MULTICLASS)
    n_splits = args.splits or (5 if args.quick else 20)
    seeds = range(args.first_split, args.first_split + n_splits)
    tasks = [(name, seed) for name in names for seed in seeds]
    if args.timing:
        threads = None if args.timing_default_threads else 1
        table = timing(args.datasets or TIMING, repeats=args.timing_repeats,
                       n_jobs=args.timing_jobs, threads=threads)
        machine = C.machine_line(C.machine_info())
        jobs = "one thread" if args.timing_jobs is None else (
            f"n_jobs={args.timing_jobs} for both, one BLAS thread per job")
        if threads is None:
            jobs = ("n_jobs=None, BLAS and OpenMP threads as the machine sets them "
                    "(what a user gets by default)")
        text = (f"# Fit time, skcfe default vs StackingClassifier ({machine})\n\n"
                f"Same base estimators (`default_estimators(0)`), cv=5, {jobs}; median of "
                f"{args.timing_repeats} fits on the whole data set, seconds; ratio: median over "
                "the runs of skcfe's time over StackingClassifier's in the same run.\n\n"
                + table.to_markdown(floatfmt=".3f") + "\n")
        stem = "combiners_time" + ("" if args.timing_jobs is None else f"_jobs{args.timing_jobs}")
        stem += "_default_threads" if threads is None else ""
        (HERE / "results" / f"{stem}.md").write_text(text)
        print(text)
        return
    if args.base_only:
        Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(base_layer)(n, s) for n, s in tasks)
        return
    stem = HERE / "results" / (args.out or ("combiners_quick" if args.quick else "combiners"))
    if args.report:
        frame = pd.read_csv(stem.with_suffix(".csv"))
        names = list(dict.fromkeys(frame.dataset))
    else:
        rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(evaluate)(n, s) for n, s in tasks)
        frame = pd.DataFrame([row for split in rows for row in split])
        frame.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
    stem.with_suffix(".md").write_text(report(frame, names))
    plot(frame, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
