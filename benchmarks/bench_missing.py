"""Missing predictions: does skcfe's completion beat imputing them?

Each split's base layer (``bench_combiners.base_layer``, cached) loses
entries of both its training and test matrices, then every method combines
the rest. Patterns: missing completely at random at 20/40/60%, and not at
random (each model abstains on the 40% of rows where it is least decided,
threshold from the training rows). Every row keeps at least one entry.

Rivals: logistic regression on logit(R) after mean imputation with missing
indicators, after IterativeImputer, after a plain rank-2 completion of the
logits; HistGradientBoostingClassifier on R (native NaN); the mean of the
available predictions. "LR, nothing missing" is the reference on the full
matrix. Paired over splits.

Run::

    python benchmarks/bench_missing.py [--splits 20]
    python benchmarks/bench_missing.py --report   # table and plot from the saved CSV

Writes ``results/missing.{csv,md,png}``.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from bench_combiners import HERE, base_layer, paired, plot_paired
from datasets import KEEL_BINARY

from skcfe import CFEnsembleClassifier

DATASETS = KEEL_BINARY + ("satimage", "default")
PATTERNS = ("MCAR 20%", "MCAR 40%", "MCAR 60%", "MNAR 40%")


def masks(base, pattern, seed):
    """Missing-entry masks of the training and test matrices."""
    rng = np.random.default_rng(seed)
    train, test = base.R_train, base.R_test
    if pattern.startswith("MCAR"):
        rate = int(pattern.split()[1].rstrip("%")) / 100
        missing = [rng.random(R.shape) < rate for R in (train, test)]
    else:
        cut = np.quantile(np.abs(train - 0.5), 0.4, axis=0)
        missing = [np.abs(R - 0.5) < cut for R in (train, test)]
    for R, miss in zip((train, test), missing):
        empty = np.flatnonzero(miss.all(axis=1))
        miss[empty, rng.integers(0, R.shape[1], empty.size)] = False
    return missing


def logits(R):
    p = np.clip(R, C.LOGIT_EPS, 1 - C.LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def rank2_completion(L_train, L_test, rank=2, iterations=30):
    """Iterative SVD completion fitted on the training rows; test rows by least squares."""
    means = np.nanmean(L_train, axis=0)
    filled = np.where(np.isnan(L_train), means, L_train)
    for _ in range(iterations):
        U, s, Vt = np.linalg.svd(filled - means, full_matrices=False)
        low = means + (U[:, :rank] * s[:rank]) @ Vt[:rank]
        filled = np.where(np.isnan(L_train), low, L_train)
    V = Vt[:rank].T
    completed = []
    for row in L_test:
        seen = ~np.isnan(row)
        coef = np.linalg.lstsq(V[seen], row[seen] - means[seen], rcond=None)[0]
        completed.append(np.where(seen, row, means + V @ coef))
    return filled, np.array(completed)


def lr(F_train, y, F_test):
    return LogisticRegression(max_iter=1000).fit(F_train, y).predict_proba(F_test)[:, 1]


def evaluate(name, seed, pattern):
    base = base_layer(name, seed)
    miss_train, miss_test = masks(base, pattern, seed)
    R_train = np.where(miss_train, np.nan, base.R_train)
    R_test = np.where(miss_test, np.nan, base.R_test)
    y, L_train, L_test = base.y_train, logits(R_train), logits(R_test)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        low_train, low_test = rank2_completion(L_train, L_test)
        scores = {
            "LR, nothing missing": lr(logits(base.R_train), y, logits(base.R_test)),
            "LR mean-imputed + indicators": make_pipeline(
                SimpleImputer(add_indicator=True), LogisticRegression(max_iter=1000)
            ).fit(L_train, y).predict_proba(L_test)[:, 1],
            "LR after IterativeImputer": make_pipeline(
                IterativeImputer(random_state=0), LogisticRegression(max_iter=1000)
            ).fit(L_train, y).predict_proba(L_test)[:, 1],
            "LR after rank-2 completion": lr(low_train, y, low_test),
            "HGB on R (native NaN)": HistGradientBoostingClassifier(random_state=0)
            .fit(R_train, y).predict_proba(R_test)[:, 1],
            "mean of available": np.nanmean(R_test, axis=1),
            "skcfe default": CFEnsembleClassifier("precomputed", random_state=seed)
            .fit(R_train, y).predict_proba(R_test)[:, 1],
        }
    return [{"dataset": name, "split": seed, "pattern": pattern, "model": model,
             "pr_auc": average_precision_score(base.y_test, p)} for model, p in scores.items()]


def report(frame):
    """The markdown report: paired tables per pattern and the verdict."""
    lines = [f"# Missing predictions ({C.machine_line(C.machine_info())})", "",
             ("PR-AUC of skcfe default minus each rival, paired over splits: mean (SE) "
              "[splits where skcfe is at least as good]."), ""]
    verdict = []
    for pattern in PATTERNS:
        part = frame[frame.pattern == pattern].drop(columns="pattern")
        table = paired(part, "pr_auc")
        table["cell"] = table.apply(
            lambda r: f"{r['mean']:+.4f} ({r['se']:.4f}) [{int(r['wins'])}/{int(r['n'])}]", axis=1)
        lines += [f"## {pattern}", "",
                  table.pivot(index="dataset", columns="rival", values="cell").to_markdown(), ""]
        rivals = table[table.rival != "LR, nothing missing"]
        verdict.append({"pattern": pattern, "comparisons": len(rivals),
                        "better > 2 SE": int((rivals.z > 2).sum()),
                        "worse > 2 SE": int((rivals.z < -2).sum())})
    lines += ["## Verdict", "", pd.DataFrame(verdict).to_markdown(index=False), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--report", action="store_true",
                        help="rewrite the table and plot from the saved CSV")
    args = parser.parse_args(argv)
    stem = HERE / "results" / "missing"
    if args.report:
        frame = pd.read_csv(stem.with_suffix(".csv"))
    else:
        tasks = [(n, s, p) for n in args.datasets or DATASETS for s in range(args.splits)
                 for p in PATTERNS]
        rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(evaluate)(*t) for t in tasks)
        frame = pd.DataFrame([r for task in rows for r in task])
        frame.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
    text = report(frame)
    stem.with_suffix(".md").write_text(text)
    # one row per (data set, pattern); the full-matrix reference is not a rival
    rivals = frame[frame.model != "LR, nothing missing"]
    plot_paired(rivals.assign(dataset=rivals.dataset + ", " + rivals.pattern),
                stem.with_suffix(".png"), "PR-AUC: skcfe default minus rival (mean, 2 SE)",
                "data set, missing pattern")
    print("\n".join(text.splitlines()[-8:]))


if __name__ == "__main__":
    main()
