"""Missing predictions: does skcfe's completion beat imputing them?

Each split's base layer (``_harness.base_layer``, cached, as ``bench_combiners.py``) loses
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

    python benchmarks/bench_missing.py                # results/missing.*
    python benchmarks/bench_missing.py --quick        # 2 splits of 2 sets, to output/
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import CFEnsembleClassifier

DATASETS = H.KEEL_BINARY + ("satimage", "default")
QUICK = ("pc1", "vehicle0")
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


def evaluate(name, seed, pattern):
    base = H.base_layer(name, seed)
    miss_train, miss_test = masks(base, pattern, seed)
    R_train = np.where(miss_train, np.nan, base.R_train)
    R_test = np.where(miss_test, np.nan, base.R_test)
    y, L_train, L_test = base.y_train, H.logit(R_train), H.logit(R_test)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        low_train, low_test = rank2_completion(L_train, L_test)
        scores = {
            "LR, nothing missing": H.lr(H.logit(base.R_train), y, H.logit(base.R_test),
                                        max_iter=1000)[:, 1],
            "LR mean-imputed + indicators": make_pipeline(
                SimpleImputer(add_indicator=True), LogisticRegression(max_iter=1000)
            ).fit(L_train, y).predict_proba(L_test)[:, 1],
            "LR after IterativeImputer": make_pipeline(
                IterativeImputer(random_state=0), LogisticRegression(max_iter=1000)
            ).fit(L_train, y).predict_proba(L_test)[:, 1],
            "LR after rank-2 completion": H.lr(low_train, y, low_test, max_iter=1000)[:, 1],
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
    lines = [f"# Missing predictions ({H.machine_line()})", "",
             ("PR-AUC of skcfe default minus each rival, paired over splits: mean (SE), median "
              "[splits where skcfe is at least as good]."), ""]
    verdict = []
    for pattern in PATTERNS:
        part = frame[frame.pattern == pattern].drop(columns="pattern")
        table = H.paired(part)
        lines += [f"## {pattern}", "", H.paired_markdown(table), ""]
        rivals = table[table.rival != "LR, nothing missing"]
        verdict.append({"pattern": pattern, "comparisons": len(rivals),
                        "better > 2 SE": int((rivals.z > 2).sum()),
                        "worse > 2 SE": int((rivals.z < -2).sum())})
    lines += ["## Verdict", "", pd.DataFrame(verdict).to_markdown(index=False), ""]
    return "\n".join(lines)


def main(argv=None):
    args = H.parser(__doc__).parse_args(argv)
    stem = H.stem(args, "missing")
    names = args.datasets or (QUICK if args.quick else DATASETS)
    frame = H.run(evaluate, [(n, s, p) for n in names for s in H.seeds(args) for p in PATTERNS],
                  args, stem)
    text = report(frame)
    stem.with_suffix(".md").write_text(text)
    # one row per (data set, pattern); the full-matrix reference is not a rival
    rivals = frame[frame.model != "LR, nothing missing"]
    H.plot_paired(rivals.assign(dataset=rivals.dataset + ", " + rivals.pattern),
                  stem.with_suffix(".png"), "PR-AUC: skcfe default minus rival (mean, 2 SE)",
                  "data set, missing pattern")
    print("\n".join(text.splitlines()[-8:]))


if __name__ == "__main__":
    main()
