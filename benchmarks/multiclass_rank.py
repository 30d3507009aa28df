"""What the full-rank CF candidate costs and buys on multiclass data.

At the default ``latent_dim=None`` the CF aggregator factorizes with as many
factors as R has columns (50 on digits: 5 models x 10 classes), and the
selection fits it on every inner fold: on digits that is what puts skcfe's
fit time above 1.2x StackingClassifier's with one thread
(``results/combiners_time.md``). ``latent_dim=K`` (the number of classes)
leaves one CF candidate, at rank K. On ``bench_combiners.py``'s 8
multiclass sets and cached base layers, 20 splits: test log loss and
accuracy of skcfe's default with ``latent_dim=K`` paired against the
default as it ships and against StackingClassifier's final estimator, and
the level-1 fit time; ``--timing``: fit time on digits, base layer
included, against StackingClassifier (median of 3, one thread).

Run::

    python benchmarks/multiclass_rank.py [--splits 20] [--timing]
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.ensemble import StackingClassifier
from sklearn.metrics import accuracy_score, log_loss
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from bench_combiners import HERE, MULTICLASS, base_layer

from skcfe import CFEnsembleClassifier, default_estimators


def evaluate(name, seed):
    base = base_layer(name, seed)
    K = base.n_classes
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for model, latent_dim in (("default", None), ("latent_dim=K", K)):
            start = time.perf_counter()
            clf = CFEnsembleClassifier("precomputed", random_state=seed, latent_dim=latent_dim)
            clf.fit(base.R_train, base.y_train)
            rows.append((model, clf.predict_proba(base.R_test), time.perf_counter() - start))
        rows.append(("stacking", C.stacking_proba(base.R_train, base.y_train, base.R_test)[0],
                     np.nan))
    return [{"dataset": name, "split": seed, "model": model, "fit_s": fit_s,
             "log_loss": log_loss(base.y_test, proba, labels=np.arange(K)),
             "accuracy": accuracy_score(base.y_test, proba.argmax(axis=1))}
            for model, proba, fit_s in rows]


def paired(frame, metric, ours, rival):
    wide = frame.pivot_table(index=["dataset", "split"], columns="model", values=metric)
    diff = (wide[ours] - wide[rival]).groupby(level="dataset")
    return diff.agg(lambda d: f"{d.mean():+.4f} ({d.std() / np.sqrt(len(d)):.4f})")


def timing(repeats=3):
    X, y = load_digits(return_X_y=True)
    models = {"stacking": lambda: StackingClassifier(default_estimators(0), cv=5),
              "default": lambda: CFEnsembleClassifier(random_state=0),
              "latent_dim=K": lambda: CFEnsembleClassifier(random_state=0, latent_dim=10)}
    seconds = {name: [] for name in models}
    for _ in range(repeats):
        for name, make in models.items():
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                make().fit(X, y)
                seconds[name].append(time.perf_counter() - start)
    table = pd.DataFrame({"fit s (median)": {n: np.median(s) for n, s in seconds.items()}})
    table["ratio to stacking"] = table["fit s (median)"] / table.loc["stacking", "fit s (median)"]
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--timing", action="store_true", help="also time digits end to end")
    args = parser.parse_args(argv)
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(evaluate)(name, seed) for name in MULTICLASS for seed in range(args.splits))
    frame = pd.DataFrame([row for split in rows for row in split])
    table = pd.DataFrame({
        "log loss: K - default": paired(frame, "log_loss", "latent_dim=K", "default"),
        "accuracy: K - default": paired(frame, "accuracy", "latent_dim=K", "default"),
        "log loss: K - stacking": paired(frame, "log_loss", "latent_dim=K", "stacking"),
        "accuracy: K - stacking": paired(frame, "accuracy", "latent_dim=K", "stacking"),
        "level-1 s, default": frame[frame.model == "default"].groupby("dataset").fit_s.median(),
        "level-1 s, K": frame[frame.model == "latent_dim=K"].groupby("dataset").fit_s.median(),
    })
    text = (f"# The full-rank CF candidate on multiclass data ({C.machine_line(C.machine_info())})"
            f"\n\n`python benchmarks/multiclass_rank.py`: {args.splits} splits of "
            "`bench_combiners.py`'s base layers. skcfe's default with `latent_dim=K` (K the "
            "number of classes) minus the default as it ships (`latent_dim=None`) and minus "
            "StackingClassifier's final estimator: test log loss and accuracy, mean (SE) of "
            "the paired differences; level-1 fit seconds (selection included, one thread, "
            "median over splits).\n\n" + table.to_markdown(floatfmt=".2f") + "\n")
    if args.timing:
        text += ("\n## Digits, base layer included (`--timing`)\n\nWhole data set, "
                 "`default_estimators(0)`, cv=5, one thread, median of 3 fits.\n\n"
                 + timing().to_markdown(floatfmt=".3f") + "\n")
    (HERE / "results" / "multiclass_rank.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
