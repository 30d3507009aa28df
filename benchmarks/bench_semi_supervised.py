"""What unlabeled rows are worth: skcfe with and without them, against peers.

Run: python benchmarks/bench_semi_supervised.py [--quick]

For each data set, seed and labeled fraction (5%, 10%, 20% of the training
rows, stratified), every method gets the same split, the same labeled rows and
the same base estimators, and is scored by PR-AUC (average precision) on a
fully labeled held-out test set:

* skcfe + unlabeled: CFEnsembleClassifier on all training rows, the unlabeled
  ones marked -1 (``unlabeled_label=-1``): they shape the factorization only.
* skcfe labeled only: CFEnsembleClassifier on the labeled rows.
* Stacking: StackingClassifier (logistic regression on out-of-fold
  probabilities) on the labeled rows.
* SelfTraining: SelfTrainingClassifier wrapping that StackingClassifier, given
  the labeled rows and the unlabeled ones marked -1 (its own API), default
  threshold 0.75 and at most 10 rounds.

Data: ``skcfe.datasets.make_imbalanced_classification`` (synthetic, known
posterior, 10% positives) and a real data set, satimage (UCI Statlog, class 4
vs rest, 9.7% positives) from ``benchmarks/datasets.py``, or scikit-learn's
breast cancer when satimage is not installed. Medians over seeds, with the
paired difference "with - without unlabeled rows" and how often it is > 0.
Writes JSON and a markdown table to ``benchmarks/results/`` and prints the table.
"""

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import SelfTrainingClassifier
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from datasets import load

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe.datasets import make_imbalanced_classification

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("skcfe + unlabeled", "skcfe labeled only", "Stacking", "SelfTraining")
UNLABELED = -1


def light_estimators(seed):
    """Four diverse, fast base estimators (--quick): linear, generative, tree, bagging."""
    return [
        ("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("naive_bayes", GaussianNB()),
        ("tree", DecisionTreeClassifier(min_samples_leaf=5, random_state=seed)),
        ("forest", RandomForestClassifier(n_estimators=50, min_samples_leaf=2, random_state=seed)),
    ]


def load_datasets(quick):
    data = make_imbalanced_classification(
        n_samples=2000 if quick else 4000, n_features=20, positive_rate=0.1, random_state=0
    )
    X, y = data.X, data.y
    yield f"synthetic (make_imbalanced_classification, 10%, n={len(y)})", X, y
    try:
        X, y, _ = load("satimage")
        if quick:  # a stratified 3000 of the 6435 rows keeps --quick within minutes
            keep, _ = train_test_split(
                np.arange(len(y)), train_size=3000, stratify=y, random_state=0
            )
            X, y = X[keep], y[keep]
        yield f"satimage (class 4 vs rest, {100 * y.mean():.1f}%, n={len(y)})", X, y
    except (ImportError, FileNotFoundError, OSError) as exc:  # satimage's package is optional
        from sklearn.datasets import load_breast_cancer

        print(f"satimage unavailable ({exc}); using breast_cancer", file=sys.stderr)
        X, y = load_breast_cancer(return_X_y=True)
        yield "breast_cancer (malignant, 37%)", X, (y == 0).astype(int)


def models(estimators, seed, skcfe_params):
    stacking = StackingClassifier(
        estimators, final_estimator=LogisticRegression(max_iter=1000), cv=5
    )
    skcfe = CFEnsembleClassifier(estimators, random_state=seed, **skcfe_params)
    return {
        "skcfe + unlabeled": clone(skcfe).set_params(unlabeled_label=UNLABELED),
        "skcfe labeled only": skcfe,
        "Stacking": stacking,
        "SelfTraining": SelfTrainingClassifier(clone(stacking)),
    }


def run_one(X, y, fraction, seed, quick, skcfe_params):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=1 / 3, stratify=y, random_state=seed
    )
    labeled, _ = train_test_split(
        np.arange(len(y_train)), train_size=fraction, stratify=y_train, random_state=seed
    )
    y_semi = np.full_like(y_train, UNLABELED)
    y_semi[labeled] = y_train[labeled]
    estimators = light_estimators(seed) if quick else default_estimators(seed)

    out = []
    for name, model in models(estimators, seed, skcfe_params).items():
        start = time.perf_counter()
        if name in ("skcfe + unlabeled", "SelfTraining"):
            model.fit(X_train, y_semi)
        else:
            model.fit(X_train[labeled], y_train[labeled])
        p = model.predict_proba(X_test)[:, list(model.classes_).index(1)]
        out.append({"fraction": fraction, "seed": seed, "method": name,
                    "pr_auc": float(average_precision_score(y_test, p)),
                    "seconds": time.perf_counter() - start, "n_labeled": len(labeled),
                    "n_labeled_positive": int(y_train[labeled].sum())})
    return out


def markdown(runs, header):
    """Median PR-AUC per method (best in bold), the paired gain of the unlabeled rows, seconds."""
    wide = runs.pivot_table(index=["dataset", "fraction", "seed"], columns="method",
                            values="pr_auc", sort=False)
    gain = (wide["skcfe + unlabeled"] - wide["skcfe labeled only"]).groupby(
        ["dataset", "fraction"], sort=False)
    median = wide.groupby(["dataset", "fraction"], sort=False).median()[list(METHODS)]
    table = median.map("{:.3f}".format).where(median.ne(median.max(axis=1), axis=0),
                                              "**" + median.map("{:.3f}".format) + "**")
    counts = runs.groupby(["dataset", "fraction"], sort=False)[
        ["n_labeled", "n_labeled_positive"]].median().astype(int)
    table.insert(0, "n lab (pos)", counts["n_labeled"].astype(str) + " ("
                 + counts["n_labeled_positive"].astype(str) + ")")
    table["gain of unlabeled (median, wins)"] = [
        f"{g.median():+.3f} ({int((g > 0).sum())}/{len(g)})" for _, g in gain]
    table = table.reset_index()
    table["fraction"] = table["fraction"].map("{:.0%}".format)
    table = table.rename(columns={"dataset": "data set", "fraction": "labeled"})
    seconds = runs[runs["fraction"] == runs["fraction"].iloc[0]].groupby(
        ["dataset", "method"], sort=False)["seconds"].median()
    lines = [header, "", table.to_markdown(index=False, disable_numparse=True), ""]
    for dataset, by_method in seconds.groupby("dataset", sort=False):
        lines.append(f"Median seconds per fit and predict, {dataset} at "
                     f"{runs['fraction'].iloc[0]:.0%}: " + ", ".join(
                         f"{m} {t:.1f}" for (_, m), t in by_method.items()) + ".  ")
    return "\n".join(lines)


def _parse_param(item):
    name, _, value = item.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 seeds, light base estimators, smaller synthetic data",
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="number of seeds (default 3 quick, 10 full)"
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument(
        "--skcfe-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CFEnsembleClassifier parameter for both skcfe runs, e.g. "
        "aggregator_alpha=1.0 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    skcfe_params = dict(_parse_param(item) for item in args.skcfe_param)
    n_seeds = args.seeds or (3 if args.quick else 10)

    start = time.perf_counter()
    records = []
    for dataset, X, y in load_datasets(args.quick):
        for fraction in args.fractions:
            runs = [run for seed in range(n_seeds)
                    for run in run_one(X, y, fraction, seed, args.quick, skcfe_params)]
            records += [{"dataset": dataset, **run} for run in runs]
            median = pd.DataFrame(runs).groupby("method", sort=False)["pr_auc"].median()
            print(f"{dataset} {fraction:.0%}: "
                  + ", ".join(f"{m} {v:.3f}" for m, v in median.items())
                  + f" [{time.perf_counter() - start:.0f}s]", flush=True)
    elapsed = time.perf_counter() - start
    runs = pd.DataFrame(records)

    estimators = light_estimators(0) if args.quick else default_estimators(0)
    meta = {**C.machine_info(), "quick": args.quick, "seeds": n_seeds,
            "fractions": args.fractions, "base_estimators": [name for name, _ in estimators],
            "skcfe_params": skcfe_params,
            "metric": "PR-AUC (average precision) on a held-out third, median over seeds",
            "seconds": elapsed}
    header = (
        f"### Semi-supervised: PR-AUC by labeled fraction ({C.machine_line(meta)}; "
        f"{'--quick, ' if args.quick else ''}{n_seeds} seeds, base estimators: "
        f"{', '.join(meta['base_estimators'])}; skcfe parameters: "
        f"{', '.join(f'{k}={v}' for k, v in skcfe_params.items()) or 'defaults'}; {elapsed:.0f} s)"
    )
    table = markdown(runs, header)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "semi_supervised_quick" if args.quick else "semi_supervised"
    stem += "".join(f"_{k}={v}" for k, v in skcfe_params.items())
    (args.out / f"{stem}.json").write_text(json.dumps(
        {"meta": meta, "runs": json.loads(runs.to_json(orient="records"))}, indent=1))
    (args.out / f"{stem}.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    # Small problems run faster on one BLAS/OpenMP thread than on contended ones.
    with threadpool_limits(limits=1):
        np.seterr(all="ignore")
        main()
