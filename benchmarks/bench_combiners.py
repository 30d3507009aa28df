"""Which combiner to trust: skcfe's default against what a careful user would try.

Every combiner sees the same base-layer matrix of the same split (``_harness``):
StackingClassifier's final estimator, LR on logit(R), the best single model by
out-of-fold score, greedy ensemble selection, non-negative logit stacking, soft
voting, and skcfe (its default and ``combiner='cf'``). 27 data sets, 20
stratified 70/30 splits each; differences are paired per split.

Run::

    python benchmarks/bench_combiners.py                 # results/combiners.*
    python benchmarks/bench_combiners.py --first-split 20 --splits 10 --out combiners_fresh
    python benchmarks/bench_combiners.py --quick         # 2 splits of 4 sets, to output/
    python benchmarks/bench_combiners.py --timing [--timing-jobs 2 | --timing-default-threads]
"""

import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from sklearn.ensemble import StackingClassifier
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import CFEnsembleClassifier, default_estimators

QUICK = ("pc1", "yeast4", "satimage", "vehicle")
TIMING = ("ada", "satimage", "page-blocks0", "vehicle", "digits")


def evaluate(name, seed):
    """Every combiner's scores on one split (one row per combiner)."""
    base = H.base_layer(name, seed)
    rows = []

    def record(model, proba, **extra):
        rows.append({"dataset": name, "split": seed, "model": model,
                     **H.scores(base.y_test, proba, excess=True), **extra})

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for model, rival in H.RIVALS.items():
            record(model, rival(base))
        model, proba, fit_s = H.skcfe_fit(base, seed)
        record("skcfe default", proba, chosen=model.combiner_, fit_s=fit_s)
        record("skcfe cf", H.skcfe_fit(base, seed, combiner="cf")[1])
    return rows


def report(frame):
    """Markdown: paired differences per metric, mean scores, verdict, choices."""
    lines = [f"# Combiner benchmark ({H.machine_line()})", "",
             ("Paired differences of skcfe default minus each rival over the splits: mean (SE), "
             "median [splits where skcfe is at least as good]. Positive is better for PR-AUC and "
             "accuracy; for Brier, ECE and log loss negative is better. ece_excess is ECE minus "
             "the ECE the same predictions would show if calibrated (their binning noise)."), ""]
    verdict = []
    for title, sets, metrics in (("Binary", H.BINARY, ("pr_auc", "brier", "ece", "ece_excess")),
                                 ("Multiclass", H.MULTICLASS, ("log_loss", "accuracy"))):
        part = frame[frame.dataset.isin(sets)]
        if part.empty:
            continue
        for metric in metrics:
            table = H.paired(part, metric)
            lines += [f"## {title}: {metric}", "", H.paired_markdown(table), ""]
            stacking = table[table.rival == "stacking"]
            if metric == "pr_auc":
                wins = stacking[stacking.z > 2]
                verdict += [(f"- PR-AUC above StackingClassifier's by more than 2 SE on "
                            f"{len(wins)} of {part.dataset.nunique()} binary data sets: "
                            f"{', '.join(wins.dataset) or 'none'}."),
                            (f"- PR-AUC below a rival's by more than 2 SE (** also by more than "
                            f"{H.LOSS_MARGIN}): {H.listing(table[table.z < -2])}.")]
            else:
                verdict.append(f"- {title} {metric} worse than StackingClassifier's beyond 2 SE: "
                               f"{H.listing(stacking[stacking.z < -2])}.")
        means = part.pivot_table(index="dataset", columns="model", values=metrics[0])
        lines += [f"## {title}: mean {metrics[0]}", "", means.to_markdown(floatfmt=".4f"), ""]
    return "\n".join([*lines, "## Verdict", "", *verdict, "",
                      "## What skcfe default chose (splits)", "", H.choices(frame), ""])


def timing(names, repeats, n_jobs, threads):
    """Fit seconds of StackingClassifier and skcfe's default, same data, same estimators."""
    rows = []
    for name in names:
        X, y = H.load(name)
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
    runs = pd.DataFrame(rows).pivot_table(index=["dataset", "run"], columns="model",
                                          values="fit_s")
    table = runs.groupby(level="dataset", sort=False).median()
    # Each run fits both back to back: the median of the runs' own ratios drifts
    # less with the machine's load than a ratio of medians.
    table["ratio"] = (runs["skcfe default"] / runs["stacking"]).groupby(level="dataset").median()
    return table


def run_timing(args):
    threads = None if args.timing_default_threads else 1
    table = timing(args.datasets or TIMING, args.timing_repeats, args.timing_jobs, threads)
    jobs = ("n_jobs=None, BLAS and OpenMP threads as the machine sets them (what a user gets "
            "by default)" if threads is None else "one thread" if args.timing_jobs is None
            else f"n_jobs={args.timing_jobs} for both, one BLAS thread per job")
    text = (f"# Fit time, skcfe default vs StackingClassifier ({H.machine_line()})\n\n"
            f"Same base estimators (`default_estimators(0)`), cv=5, {jobs}; median of "
            f"{args.timing_repeats} fits on the whole data set, seconds; ratio: median over the "
            "runs of skcfe's time over StackingClassifier's in the same run.\n\n"
            + table.to_markdown(floatfmt=".3f") + "\n")
    suffix = ("" if args.timing_jobs is None else f"_jobs{args.timing_jobs}") + (
        "_default_threads" if threads is None else "")
    H.stem(args, "combiners_time" + suffix).with_suffix(".md").write_text(text)
    print(text)


def main(argv=None):
    parser = H.parser(__doc__)
    parser.add_argument("--timing", action="store_true", help="fit time against stacking")
    parser.add_argument("--timing-jobs", type=int, default=None, help="n_jobs of both")
    parser.add_argument("--timing-default-threads", action="store_true",
                        help="BLAS and OpenMP threads as the machine sets them")
    parser.add_argument("--timing-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.timing:
        return run_timing(args)
    names = args.datasets or (QUICK if args.quick else H.BINARY + H.MULTICLASS)
    stem = H.stem(args, "combiners")
    frame = H.run(evaluate, [(n, s) for n in names for s in H.seeds(args)], args, stem)
    stem.with_suffix(".md").write_text(report(frame))
    binary = frame[frame.dataset.isin(H.BINARY)]
    if not binary.empty:
        H.plot_paired(binary, stem.with_suffix(".png"),
                      "PR-AUC: skcfe default minus rival (mean, 2 SE)")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
