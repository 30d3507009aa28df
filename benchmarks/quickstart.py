"""Quick comparison of skcfe against StackingClassifier on data shipped with scikit-learn.

Run: python benchmarks/quickstart.py

Fits, on identical stratified splits and identical base estimators,
StackingClassifier (logistic regression on the out-of-fold probabilities),
the best single base estimator (chosen by cross-validated PR-AUC on the
training split), and CFEnsembleClassifier; prints held-out PR-AUC, ROC-AUC,
Brier score and log loss.
"""

import argparse
import time

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import StackingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import cross_val_score, train_test_split
from threadpoolctl import threadpool_limits

from skcfe import CFEnsembleClassifier, default_estimators


def datasets():
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast_cancer (malignant, 37%)", X, (y == 0).astype(int)
    X, y = load_digits(return_X_y=True)
    yield "digits: 9 vs rest (10%)", X, (y == 9).astype(int)


def evaluate(model, X_train, y_train, X_test, y_test):
    start = time.perf_counter()
    p = clone(model).fit(X_train, y_train).predict_proba(X_test)[:, 1]
    return {
        "PR-AUC": average_precision_score(y_test, p),
        "ROC-AUC": roc_auc_score(y_test, p),
        "Brier": brier_score_loss(y_test, p),
        "log loss": log_loss(y_test, p),
        "seconds": time.perf_counter() - start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, X, y in datasets():
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=args.seed)
        estimators = default_estimators(args.seed)
        best_name, best = max(
            estimators,
            key=lambda item: cross_val_score(item[1], X_train, y_train, cv=5, scoring="average_precision").mean(),
        )
        models = {
            "skcfe (defaults)": CFEnsembleClassifier(estimators, random_state=args.seed),
            "skcfe focal_gamma=2": CFEnsembleClassifier(estimators, focal_gamma=2.0, random_state=args.seed),
            "StackingClassifier": StackingClassifier(estimators, cv=5),
            f"best base ({best_name})": best,
        }
        print(f"\n{name}: {len(y_train)} train / {len(y_test)} test rows")
        print(f"{'model':28s} {'PR-AUC':>7s} {'ROC-AUC':>7s} {'Brier':>7s} {'logloss':>7s} {'sec':>6s}")
        for label, model in models.items():
            r = evaluate(model, X_train, y_train, X_test, y_test)
            print(
                f"{label:28s} {r['PR-AUC']:7.4f} {r['ROC-AUC']:7.4f} {r['Brier']:7.4f} "
                f"{r['log loss']:7.4f} {r['seconds']:6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    # Small problems run faster on one BLAS/OpenMP thread than on contended ones.
    with threadpool_limits(limits=1):
        np.seterr(all="ignore")
        main()
