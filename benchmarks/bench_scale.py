"""How far does one machine go? The factorization's time and peak memory up to n = 1e7 rows.

The combiner's own cost, with no base models: ``CFEnsembleClassifier(
estimators='precomputed', combiner='cf', backend='als')`` fitted on a
synthetic binary probability matrix of m = 10 columns (:func:`make_data`). ``combiner='auto'`` (the
default, which adds the inner-CV model selection) is measured too, at the
sizes where it is affordable. Each size runs in a fresh subprocess, so that
no allocation of one size is counted at another.

Memory is the fit's peak resident set size (Linux ``VmHWM``, reset just
before ``fit`` through ``/proc/self/clear_refs``), reported as measured and
as a multiple of ``R = n m 8`` bytes after subtracting the interpreter's
resident size before the data existed; the multiple therefore counts ``R``
itself, everything the fit allocates and anything it leaves resident.

StackingClassifier's final step (LogisticRegression on R, ``lr``) is
measured alongside, and a K = 5 class matrix at n = 1e6 (``--multiclass``).

Goals (issues 12 and 23): at n = 1e7 and m = 10 a fit in under 5 minutes on
2 cores, with a peak under 3x R; 'auto' within 3x the CPU time of 'cf' at
1e5 and 1.5x at 1e6 and beyond, its peak within 1.5x; K = 5 within 2x.

Rerun the whole table and results/scale.md (about 30 minutes on 2 cores)::

    python benchmarks/bench_scale.py [--sizes 1e5 1e6 1e7] [--methods lr cf auto]
        [--multiclass 1e6] [--no-checks]

Profile one size (cProfile's top functions, then tracemalloc's largest
allocation sites at the peak)::

    python benchmarks/bench_scale.py --profile 1e6
"""

import argparse
import cProfile
import json
import os
import pstats
import re
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np

M = 10
BLOCK = 10**6


def _status(field):
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+) kB", fh.read()).group(1)) * 1024


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def make_data(n, seed=0):
    """A binary (n, M) probability matrix with correlated, unequally good columns.

    Row ``i`` has evidence ``mu_i = 2.5 (y_i - 1/2) + e_i`` (``e_i`` standard
    normal, shared by every column: an error no combination removes);
    column ``j`` reports ``expit(beta_j (mu_i + sigma_j xi_ij) + c_j)`` with
    its own noise scale, temperature and offset. Built in blocks of 1e6 rows
    from one random stream, so the data never set the peak memory.
    """
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    sigma, beta, offset = rng.uniform(0.5, 3, M), rng.uniform(0.5, 2, M), rng.normal(0, 0.5, M)
    R = np.empty((n, M))
    y = (rng.random(n) < 0.1).astype(np.intp)
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        mu = 2.5 * (y[rows] - 0.5) + rng.standard_normal(rows.stop - rows.start)
        noise = rng.standard_normal((rows.stop - rows.start, M)) * sigma
        R[rows] = expit(beta * (mu[:, None] + noise) + offset)
    return R, y


def make_multiclass_data(n, n_classes=5, seed=0):
    """A K-class (n, M K) probability matrix, model-major columns, imbalanced classes.

    Row ``i`` of class ``y_i`` has evidence ``2.5 onehot(y_i) + e_i`` (``e_i``
    standard normal per class, shared by every model); model ``j`` reports
    ``softmax(beta_j (evidence + sigma_j xi_ij) + c_j)`` with its own noise
    scale, temperature and class offsets. Class priors 0.5, 0.25, 0.15, 0.07,
    0.03 (K = 5; geometric for other K). Built in blocks of 1e6 rows.
    """
    from scipy.special import softmax

    rng = np.random.default_rng(seed)
    prior = (np.array([0.5, 0.25, 0.15, 0.07, 0.03]) if n_classes == 5
             else 0.5 ** np.arange(1, n_classes + 1))
    prior = prior / prior.sum()
    sigma, beta = rng.uniform(0.5, 3, M), rng.uniform(0.5, 2, M)
    offset = rng.normal(0, 0.5, (M, n_classes))
    y = rng.choice(n_classes, n, p=prior).astype(np.intp)
    R = np.empty((n, M * n_classes))
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        size = rows.stop - rows.start
        evidence = 2.5 * np.eye(n_classes)[y[rows]] + rng.standard_normal((size, n_classes))
        for j in range(M):
            noise = rng.standard_normal((size, n_classes)) * sigma[j]
            R[rows, j * n_classes:(j + 1) * n_classes] = softmax(
                beta[j] * (evidence + noise) + offset[j], axis=1)
    return R, y


def estimator(combiner):
    """``combiner='lr'``: StackingClassifier's final step, LogisticRegression on R itself."""
    if combiner == "lr":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    from skcfe import CFEnsembleClassifier

    return CFEnsembleClassifier(
        estimators="precomputed", combiner=combiner, backend="als", random_state=0
    )


def worker(n, combiner, n_classes=2):
    """Fit once at size ``n``; print one JSON line with time and memory."""
    model = estimator(combiner)  # imports everything before the baseline
    baseline = _status("VmRSS")
    R, y = make_data(n) if n_classes == 2 else make_multiclass_data(n, n_classes)
    _reset_peak()
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(R, y)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _status("VmHWM")
    print(json.dumps({
        "n": n, "classes": n_classes, "combiner": combiner, "seconds": seconds,
        "cpu_seconds": cpu_seconds, "peak_rss": peak, "R_bytes": R.nbytes,
        "peak_over_R": (peak - baseline) / R.nbytes,
        "n_iter": int(np.max(model.n_iter_)),
    }))


# Functions whose time and extra memory the profile reports (none calls another).
PHASES = [
    ("skcfe._validation", "check_precomputed"), ("skcfe._cf", "fit_confidence"),
    ("skcfe.backends.als", "initial_factors"), ("skcfe.backends.als", "balanced_sweep"),
    ("skcfe.backends.als", "fit_weighted"), ("skcfe.backends.als", "supervised_loss"),
]


def profile(n):
    """Where time (cProfile) and memory (tracemalloc) go in one fit at size ``n``.

    BLAS and the row blocks run in one thread here, so that cProfile sees
    every block's work.
    """
    import importlib

    from threadpoolctl import threadpool_limits

    R, y = make_data(n)
    usage = {}

    def traced(module, name):
        func = getattr(module, name)

        def wrapper(*args, **kwargs):
            start, clock = tracemalloc.get_traced_memory()[0], time.perf_counter()
            tracemalloc.reset_peak()
            try:
                return func(*args, **kwargs)
            finally:
                seconds, extra = time.perf_counter() - clock, tracemalloc.get_traced_memory()[1] - start
                calls, total, held, peak = usage.get(name, (0, 0.0, 0, 0))
                usage[name] = (calls + 1, total + seconds, max(held, start), max(peak, extra))
        return wrapper

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        profiler = cProfile.Profile()
        profiler.runcall(estimator("cf").fit, R, y)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        for module, name in PHASES:
            module = importlib.import_module(module)
            setattr(module, name, traced(module, name))
        tracemalloc.start()
        estimator("cf").fit(R, y)
    print("phase: calls, seconds, largest memory held on entry (x R), largest extra peak (x R)")
    for name, (calls, seconds, held, extra) in usage.items():
        print(f"  {name}: {calls}, {seconds:.2f}, {held / R.nbytes:.2f}, {extra / R.nbytes:.2f}")
    peak = max(held + extra for _, _, held, extra in usage.values())
    print(f"tracemalloc: the fit's peak is {peak / R.nbytes:.2f} x R beyond R itself")


def run_size(n, combiner, n_classes=2):
    """One fit in a fresh process (BLAS limited to 2 threads): its JSON line as a dict."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(n), "--combiner", combiner,
         "--classes", str(n_classes)],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_and_score(combiner, R, y, R_test, y_test):
    """A fit of ``combiner`` on (R, y), quietly: the model, its fit's (wall s, CPU s) and
    its held-out average precision and log loss."""
    from sklearn.metrics import average_precision_score, log_loss

    model = estimator(combiner)
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(R, y)
    seconds = (time.perf_counter() - wall, time.process_time() - cpu)
    proba = model.predict_proba(R_test)
    return model, proba, seconds, {
        "held-out average precision": average_precision_score(y_test, proba[:, 1]),
        "held-out log loss": log_loss(y_test, proba)}


def subsample_check(n=10**6, fraction=0.1, chunk=10**5):
    """A fit on a subsample against a fit on every row, scored on ``n`` held-out rows.

    The subsample's model then predicts the held-out rows in chunks, in
    joblib's worker processes, as a cluster would; the largest difference
    from predicting them at once shows that prediction is row by row.
    """
    from joblib import Parallel, delayed

    R, y = make_data(2 * n, seed=1)
    R_test, y_test = R[n:], y[n:]
    rows = []
    for label, size in (("every row", n), (f"{fraction:.0%} subsample", int(fraction * n))):
        model, whole, (seconds, _), scores = fit_and_score("cf", R[:size], y[:size], R_test,
                                                           y_test)
        rows.append({"fitted on": label, "rows": size, "fit s": seconds, **scores})
    parts = Parallel(n_jobs=2)(delayed(model.predict_proba)(R_test[start:start + chunk])
                               for start in range(0, n, chunk))
    return rows, float(np.abs(np.vstack(parts) - whole).max())


def selection_check(n=2 * 10**5, seeds=range(1, 6), configs=(None, (20_000, 50_000))):
    """``combiner='auto'`` with its selection's holdout against 5-fold CV on every row.

    For each seed, ``n`` training rows and ``n`` held-out rows of
    ``make_data(2 n, seed)``; each config is (``HOLDOUT_FIT_ROWS``,
    ``HOLDOUT_SCORE_ROWS``), None: the 5-fold selection on every row (the
    first config, which the others are paired with). Returns one row per
    config: median CPU seconds of the fit, in how many seeds the best
    candidate was the first config's, the held-out average precision and
    log loss, and their paired differences from the first config (mean and
    standard error over the seeds).
    """
    import skcfe.level1.selection as selection

    found = {config: [] for config in configs}
    for seed in seeds:
        R, y = make_data(2 * n, seed=seed)
        for config in configs:
            selection.SELECTION_MAX_ROWS = 10**12 if config is None else 50_000
            if config is not None:
                selection.HOLDOUT_FIT_ROWS, selection.HOLDOUT_SCORE_ROWS = config
            model, _, (_, cpu), scores = fit_and_score("auto", R[:n], y[:n], R[n:], y[n:])
            results = model.selection_results_
            best = results["candidate"][int(np.argmax(results["pooled_test_score"]))]
            found[config].append((cpu, best, scores["held-out average precision"],
                                  scores["held-out log loss"]))
            print(seed, config, found[config][-1], flush=True)
    base = np.array([row[2:] for row in found[configs[0]]])
    rows = []
    for config, runs in found.items():
        values = np.array([row[2:] for row in runs])
        diff = values - base
        se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else diff[0] * 0
        rows.append({
            "selection": ("5-fold CV on every row" if config is None
                          else f"holdout: fit on {config[0]:,}, score on {config[1]:,}"),
            "CPU s (median)": float(np.median([row[0] for row in runs])),
            "same best candidate": sum(a[1] == b[1] for a, b in zip(runs, found[configs[0]])),
            "average precision": values[:, 0].mean(),
            "AP diff (mean)": diff[:, 0].mean(), "AP diff (SE)": se[0],
            "log loss": values[:, 1].mean(),
            "log loss diff (mean)": diff[:, 1].mean(), "log loss diff (SE)": se[1],
        })
    return rows


BEYOND = """\
## Beyond one machine

Predictions fold each row in with the factors fixed, so chunks in parallel give the
same numbers (checked above): fit on a subsample that fits in memory and predict the
rest in chunks (user guide, "Large data"); unlabeled rows belong in the subsample."""


BEFORE = """\
## Before issue 23 (the selection cross-validated on every row, C and the aggregator not streamed)

Measured on the same machine with the code before the issue (a copy of
`skcfe/` at its start; the same worker, `--worker N --combiner C`, each fit
in a fresh process, BLAS limited to 2 threads, under `nice`, load average
2.4 to 3.1), 2026-12-07:

| method | n | wall s | CPU s | peak / R |
|:--|--:|--:|--:|--:|
| lr | 100,000 | 0.842 | 0.828 | 1.7 |
| cf | 100,000 | 2.08 | 2.14 | 7.6 |
| auto | 100,000 | 35.9 | 36.1 (16.9x cf) | 25.7 |
| lr | 1,000,000 | 2.10 | 2.36 | 1.5 |
| cf | 1,000,000 | 18.6 | 16.9 | 6.6 |
| auto | 1,000,000 | not run: over 1,500 s wall (issue 23) | | |
| lr | 10,000,000 | 14.2 | 13.5 | 1.5 |
| cf | 10,000,000 | 169 | 179 | 6.5 |
| auto | 10,000,000 | not run | | |"""


WHERE = """\
## Where the time goes

Above `SELECTION_MAX_ROWS` = 50,000 labeled rows (`skcfe/level1/selection.py`)
the default's selection is a holdout (`holdout_rows`): every candidate is fitted
once on a stratified sample of `HOLDOUT_FIT_ROWS` = 20,000 labeled rows (and the
same fraction of unlabeled rows), seeded by the estimator's seed, and scored,
and the pool weighted, on a stratified sample of up to `HOLDOUT_SCORE_ROWS` =
50,000 others; those fits predict (the configured CF aggregator is the fit on
every row, which 'cf' makes anyway). Greedy selection scores its steps by
average precision binned on 2^16 score bins instead of a sort, and the pool's
L-BFGS runs with one BLAS thread (with two, on this loaded machine, a 50,000-row
pool took 1 s instead of 0.04 s). The level-1 step therefore costs a constant
whatever n, and the CF fit on every row is the rest. Below the threshold the
selection cross-validates on every row as before.

In one thread, n = 1e6, 4 sweeps of the CF fit: the row blocks (instance step, the
classifier step's normal equations, the fold-in features) take two thirds of
the time, most of it in `np.linalg.solve` on the stacked d x d systems; the
aggregator (`fit_weighted` in `skcfe/_aggregator.py`) the remaining third.
Memory beyond R: the labeled rows' aggregator input Z (1x R) and a few values
per row. The confidence is computed from R for each block of rows that needs
it (`RowConfidence` in `skcfe/_confidence.py`), never held whole, and the
aggregator's loss, gradient and Hessian are sums over row blocks of Z, each
block with its column of ones (`_Design` in `skcfe/_aggregator.py`); the
blocks are large enough (up to 95,000 rows at 10 columns) that smaller data
give the same sums to the bit (`python benchmarks/bench_scale.py --profile 1e6`:
time by function, then the largest memory by phase)."""


NOTES = """\
Notes. K = 5 was out of reach before issue 23 (an ALS sweep held every row block's
normal equations: 57.9x R at n = 1e5); they are now summed 16 blocks at a time,
bitwise the same."""


def _ratio(table, column):
    """``column`` of each row over that of combiner 'cf' at the same n and classes."""
    cf = table[table["method"] == "cf"].set_index(["n", "classes"])[column]
    keys = list(zip(table["n"], table["classes"]))
    return [row / cf.get(key, np.nan) for row, key in zip(table[column], keys)]


def report(rows, subsample, chunk_difference, selection, load, command):
    """Write results/scale.md, scale.json and scale.png; ``load``: the load average at
    the start and end."""
    import matplotlib

    matplotlib.use("Agg")
    import _harness
    import matplotlib.pyplot as plt
    import pandas as pd

    (HERE / "results" / "scale.json").write_text(json.dumps(
        {"rows": rows, "subsample": subsample, "chunk_difference": chunk_difference,
         "selection": selection, "load": load, "command": command}, indent=1))
    table = pd.DataFrame(rows).rename(columns={"combiner": "method"})
    table["R MB"] = table.pop("R_bytes") / 1e6
    table["peak RSS MB"] = table.pop("peak_rss") / 1e6
    table["peak / R"] = table.pop("peak_over_R")
    table["CPU / cf"] = _ratio(table, "cpu_seconds")
    table["peak / cf"] = _ratio(table, "peak RSS MB")
    table = table[["method", "n", "classes", "n_iter", "seconds", "cpu_seconds", "CPU / cf",
                   "R MB", "peak RSS MB", "peak / R", "peak / cf"]].rename(
        columns={"seconds": "wall s", "cpu_seconds": "CPU s"})
    binary, multi = table[table["classes"] == 2], table[table["classes"] > 2]

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (method, part), color in zip(binary.groupby("method", sort=False), ("C0", "C1", "C2")):
        label = {"lr": "LogisticRegression on R"}.get(method, f"combiner='{method}'")
        ax_t.loglog(part["n"], part["wall s"], "o-", color=color, label=f"{label}, wall")
        ax_t.loglog(part["n"], part["CPU s"], "x:", color=color, label=f"{label}, CPU")
        ax_m.loglog(part["n"], part["peak RSS MB"], "o-", color=color, label=label)
    ax_t.axhline(300, color="grey", ls="--", label="goal at n = 1e7: 5 min")
    sizes = np.sort(binary["n"].unique())
    ax_m.loglog(sizes, 3 * sizes * M * 8 / 1e6, "k--", label="3 x R (goal)")
    ax_m.loglog(sizes, sizes * M * 8 / 1e6, "k:", label="R = n m 8 bytes")
    ax_t.set(xlabel="rows n (m = 10 columns)", ylabel="fit time (s)", title="Fit time")
    ax_m.set(xlabel="rows n (m = 10 columns)", ylabel="peak resident memory (MB)",
             title="Peak memory")
    for ax in (ax_t, ax_m):
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "results" / "scale.png", dpi=120)

    goals = []
    for _, row in binary[binary["method"] == "auto"].iterrows():
        limit = 3.0 if row["n"] < 10**6 else 1.5
        goals.append(
            f"- n = {row['n']:,}: 'auto' CPU {row['CPU / cf']:.2f}x 'cf' (goal <= {limit}x: "
            f"**{'met' if row['CPU / cf'] <= limit else 'not met'}**), peak "
            f"{row['peak / cf']:.2f}x 'cf' (goal <= 1.5x: "
            f"**{'met' if row['peak / cf'] <= 1.5 else 'not met'}**).")
    for method in ("auto", "cf"):
        part = binary[(binary["method"] == method) & (binary["n"] >= 10**7)]
        for _, row in part.iterrows():
            goals.append(
                f"- n = {row['n']:,}, '{method}': {row['CPU s']:.0f} CPU s, {row['wall s']:.0f} s "
                f"wall (goal under 300 s: **{'met' if row['CPU s'] < 300 else 'not met'}** in "
                f"CPU time, **{'met' if row['wall s'] < 300 else 'not met'}** in wall time on "
                f"this shared machine), peak {row['peak / R']:.1f}x R (goal under 3x: "
                f"**{'met' if row['peak / R'] < 3 else 'not met'}**).")
    for _, row in multi[multi["method"] == "auto"].iterrows():
        goals.append(
            f"- K = {row['classes']}, n = {row['n']:,}: 'auto' CPU {row['CPU / cf']:.2f}x 'cf' "
            f"(goal within 2x: **{'met' if row['CPU / cf'] <= 2 else 'not met'}**).")
    formats = ("", "", "", "", ".3g", ".3g", ".2f", ".4g", ".4g", ".1f", ".2f")
    lines = [
        ("# The default at scale: LogisticRegression, 'cf' and 'auto' up to n = 1e7 rows "
         f"({_harness.machine_line()})"),
        "",
        (f"`{command}` (each fit in a fresh process, BLAS limited to 2 threads, run under "
         f"`nice`; load average {load[0]:.1f} at the start and {load[1]:.1f} at the end, on "
         "2 cores shared with other jobs, so wall times are pessimistic; CPU s is the "
         "process's CPU time)."),
        "",
        ("On a synthetic precomputed probability matrix of m = 10 models (`make_data`; "
         "K = 5 classes: `make_multiclass_data`, 50 columns): 'lr' is "
         "StackingClassifier's final step, `LogisticRegression(max_iter=1000)` on R; 'cf' "
         "and 'auto' are `CFEnsembleClassifier(estimators='precomputed', combiner=..., "
         "backend='als', random_state=0)`. Peak is the process's peak resident memory "
         "during `fit` (VmHWM); peak / R subtracts the interpreter's resident size before "
         "the data existed, so it counts R itself; peak / cf compares peak RSS."),
        "",
        table.to_markdown(index=False, floatfmt=formats, intfmt=","),
        "",
        "## Goals (issue 23), 2 cores",
        "",
        *goals,
        "",
        NOTES,
        "",
        BEFORE,
        "",
        "## The selection's holdout against 5-fold CV on every row",
        "",
        ("`combiner='auto'` on n = 200,000 training rows of `make_data(400_000, seed)`, "
         "scored on the other 200,000, seeds 1 to 5 (`selection_check`): the 5-fold "
         "selection on every row (`SELECTION_MAX_ROWS` raised) against the holdout; "
         "differences are paired by seed (holdout minus every row)."),
        "",
        pd.DataFrame(selection).to_markdown(
            index=False, floatfmt=("", ".1f", "", ".5f", ".5f", ".5f", ".5f", ".5f", ".5f"))
        if selection else "(not run)",
        "",
        WHERE,
        "",
        "## A CF fit on a subsample against every row (n = 1e6 training rows, 1e6 held out)",
        "",
        pd.DataFrame(subsample).to_markdown(index=False, floatfmt=".4g") if subsample else
        "(not run)",
        "",
        (f"Predicting the held-out rows in chunks of 1e5 in joblib's worker processes: "
         f"largest absolute difference from predicting them at once {chunk_difference:.1e}."
         if subsample else ""),
        "",
        BEYOND,
    ]
    text = "\n".join(lines)
    (HERE / "results" / "scale.md").write_text(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e5, 1e6, 1e7],
                        help="binary sizes (none: only the K = 5 comparison)")
    parser.add_argument("--methods", nargs="+", default=["lr", "cf", "auto"])
    parser.add_argument("--auto-max", type=float, default=1e7,
                        help="largest size at which combiner='auto' is measured")
    parser.add_argument("--multiclass", type=float, default=1e6,
                        help="rows of the K = 5 comparison (0: none)")
    parser.add_argument("--no-checks", action="store_true",
                        help="skip the subsample and selection comparisons")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite scale.md and scale.png from results/scale.json")
    parser.add_argument("--merge", action="store_true",
                        help="keep results/scale.json's other rows (and its comparisons "
                             "with --no-checks): rerun part of the table")
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--combiner", default="cf", help=argparse.SUPPRESS)
    parser.add_argument("--classes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=float, help="profile one fit at this size")
    parser.add_argument("--selection-check", action="store_true",
                        help="only the selection's holdout against CV on every row")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(int(args.worker), args.combiner, args.classes)
    if args.profile:
        return profile(int(args.profile))
    if args.selection_check:
        return print(json.dumps(selection_check()))
    command = "python benchmarks/bench_scale.py " + " ".join(argv or sys.argv[1:])
    if args.render:
        old = json.loads((HERE / "results" / "scale.json").read_text())
        return print(report(old["rows"], old["subsample"], old["chunk_difference"],
                            old["selection"], old["load"], old["command"]))
    load_start = os.getloadavg()[0]
    jobs = [(int(n), method, 2) for n in args.sizes for method in args.methods
            if method != "auto" or n <= args.auto_max]
    if args.multiclass:
        jobs += [(int(args.multiclass), method, 5) for method in args.methods]
    rows = []
    for n, method, n_classes in jobs:
        rows.append(run_size(n, method, n_classes))
        print(rows[-1], flush=True)
    subsample, chunk_difference, selection = [], float("nan"), []
    if not args.no_checks:
        subsample, chunk_difference = subsample_check()
        selection = selection_check()
    load = (load_start, os.getloadavg()[0])
    if args.merge and (HERE / "results" / "scale.json").is_file():
        old = json.loads((HERE / "results" / "scale.json").read_text())
        new = {(row["n"], row["classes"], row["combiner"]) for row in rows}
        rows = [row for row in old["rows"]
                if (row["n"], row["classes"], row["combiner"]) not in new] + rows
        rows.sort(key=lambda row: (row["classes"], row["n"],
                                   ["lr", "cf", "auto"].index(row["combiner"])))
        if args.no_checks:
            subsample, chunk_difference = old["subsample"], old["chunk_difference"]
            selection = old["selection"]
        load = (min(load[0], old["load"][0]), max(load[1], old["load"][1]))
        command = old.get("command", "") + "`, then `" + command.strip()
    print(report(rows, subsample, chunk_difference, selection, load, command.strip()))


if __name__ == "__main__":
    main()
