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
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
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
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from datasets import load

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

    out = {}
    for name, model in models(estimators, seed, skcfe_params).items():
        start = time.perf_counter()
        if name in ("skcfe + unlabeled", "SelfTraining"):
            model.fit(X_train, y_semi)
        else:
            model.fit(X_train[labeled], y_train[labeled])
        p = model.predict_proba(X_test)[:, list(model.classes_).index(1)]
        out[name] = {
            "pr_auc": float(average_precision_score(y_test, p)),
            "seconds": time.perf_counter() - start,
        }
    out["n_labeled"] = len(labeled)
    out["n_labeled_positive"] = int(y_train[labeled].sum())
    out["n_unlabeled"] = int(len(y_train) - len(labeled))
    return out


def summarize(runs):
    """Median PR-AUC per method, the paired gain of unlabeled rows, wins."""
    summary = {}
    for method in METHODS:
        summary[method] = float(np.median([r[method]["pr_auc"] for r in runs]))
    gains = np.array(
        [r["skcfe + unlabeled"]["pr_auc"] - r["skcfe labeled only"]["pr_auc"] for r in runs]
    )
    summary["gain_median"] = float(np.median(gains))
    summary["gain_wins"] = int(np.sum(gains > 0))
    summary["n_seeds"] = len(runs)
    summary["n_labeled"] = int(np.median([r["n_labeled"] for r in runs]))
    summary["n_labeled_positive"] = int(np.median([r["n_labeled_positive"] for r in runs]))
    summary["seconds"] = {m: float(np.median([r[m]["seconds"] for r in runs])) for m in METHODS}
    return summary


def markdown(results, header):
    lines = [header, ""]
    cols = ["data set", "labeled", "n lab (pos)", *METHODS, "gain of unlabeled (median, wins)"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for dataset, by_fraction in results.items():
        for fraction, s in by_fraction.items():
            best = max(s[m] for m in METHODS)
            cells = [f"**{s[m]:.3f}**" if s[m] == best else f"{s[m]:.3f}" for m in METHODS]
            lines.append(
                f"| {dataset} | {float(fraction):.0%} | "
                f"{s['n_labeled']} ({s['n_labeled_positive']}) | "
                + " | ".join(cells)
                + f" | {s['gain_median']:+.3f} ({s['gain_wins']}/{s['n_seeds']}) |"
            )
    lines.append("")
    for dataset, by_fraction in results.items():
        fraction, s = next(iter(by_fraction.items()))
        seconds = ", ".join(f"{m} {t:.1f}" for m, t in s["seconds"].items())
        lines.append(
            f"Median seconds per fit and predict, {dataset} at {float(fraction):.0%}: {seconds}.  "
        )
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
    results, raw = {}, {}
    for dataset, X, y in load_datasets(args.quick):
        results[dataset], raw[dataset] = {}, {}
        for fraction in args.fractions:
            runs = [
                run_one(X, y, fraction, seed, args.quick, skcfe_params) for seed in range(n_seeds)
            ]
            raw[dataset][str(fraction)] = runs
            results[dataset][str(fraction)] = summarize(runs)
            s = results[dataset][str(fraction)]
            print(
                f"{dataset} {fraction:.0%}: "
                + ", ".join(f"{m} {s[m]:.3f}" for m in METHODS)
                + f" | gain {s['gain_median']:+.3f} ({s['gain_wins']}/{n_seeds}) "
                f"[{time.perf_counter() - start:.0f}s]",
                flush=True,
            )
    elapsed = time.perf_counter() - start

    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}, "
        f"{os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "quick": args.quick,
        "seeds": n_seeds,
        "fractions": args.fractions,
        "base_estimators": [
            name for name, _ in (light_estimators(0) if args.quick else default_estimators(0))
        ],
        "skcfe_params": skcfe_params,
        "metric": "PR-AUC (average precision) on a held-out third, median over seeds",
        "seconds": elapsed,
    }
    header = (
        f"### Semi-supervised: PR-AUC by labeled fraction ({meta['date']}, {meta['machine']}, "
        f"{'--quick, ' if args.quick else ''}{n_seeds} seeds, base estimators: "
        f"{', '.join(meta['base_estimators'])}; skcfe parameters: "
        f"{', '.join(f'{k}={v}' for k, v in skcfe_params.items()) or 'defaults'}; {elapsed:.0f} s)"
    )
    table = markdown(results, header)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "semi_supervised_quick" if args.quick else "semi_supervised"
    stem += "".join(f"_{k}={v}" for k, v in skcfe_params.items())
    (args.out / f"{stem}.json").write_text(
        json.dumps({"meta": meta, "summary": results, "runs": raw}, indent=1)
    )
    (args.out / f"{stem}.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    # Small problems run faster on one BLAS/OpenMP thread than on contended ones.
    with threadpool_limits(limits=1):
        np.seterr(all="ignore")
        main()
