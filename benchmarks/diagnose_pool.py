"""Where skcfe's default loses to one of its own candidates: could the inner CV have told?

On the data sets where ``results/combiners.md`` has skcfe's default below a
rival by more than 2 SE, and on the same 20 splits and cached base layers as
``bench_combiners.py``: every candidate of the Super Learner's library
(``CFEnsembleClassifier.selection_results_``) refit on the split's training
rows as skcfe refits its pool members, with its inner-CV score (what the
selection saw), its pool weight, how often it had the best inner-CV score,
and its test PR-AUC minus the default's (mean and SE over the splits). A
rival that is one of the candidates (``stacking``, ``nonneg_logit``,
``greedy``, ``single:<model>``) beats the pool on test only by what the
inner CV could not resolve if its inner-CV score is within the others'
spread.

Run::

    python benchmarks/diagnose_pool.py [--splits 20] [--datasets kc1 default]
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from bench_combiners import HERE, base_layer

from skcfe import CFEnsembleClassifier
from skcfe._selection import candidate_library, get_scorer

# Binary sets with a PR-AUC loss beyond 2 SE in results/combiners.md.
DATASETS = ("cm1", "default", "abalone9-18", "page-blocks0", "kc1", "satimage", "flights")


def evaluate(name, seed):
    """One row per candidate: inner-CV score, pool weight, test PR-AUC minus the default's."""
    base = base_layer(name, seed)
    R, y = base.R_train, base.y_train
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        clf = CFEnsembleClassifier("precomputed", random_state=seed).fit(R, y)
        default = C.pr_auc(base.y_test, clf.predict_proba(base.R_test))
        results = clf.selection_results_
        # The library skcfe scored, in its order, its single models named as the base layer's.
        library = candidate_library(list(base.names), 2, clf._fitted_cf_params, clf._seed,
                                    get_scorer(None, 2))
        assert len(library) == len(results["candidate"])
        ones = np.ones(len(y))
        best = int(np.argmax(results["pooled_test_score"]))
        rows = []
        for c, (candidate_name, candidate) in enumerate(library):
            proba = candidate.fit(R, y, ones.astype(bool), ones, 2).predict_proba(base.R_test)
            rows.append({"dataset": name, "split": seed, "candidate": candidate_name,
                         "inner_cv": results["pooled_test_score"][c],
                         "weight": results["weight"][c], "best_cv": c == best,
                         "gain": C.pr_auc(base.y_test, proba) - default})
    return rows


def report(frame):
    grouped = frame.groupby(["dataset", "candidate"], sort=False)
    table = pd.DataFrame({
        "inner-CV PR-AUC": grouped.inner_cv.mean(),
        "best by inner CV": grouped.best_cv.sum().astype(int),
        "pool weight": grouped.weight.mean(),
        "test: candidate - default": grouped.gain.agg(
            lambda g: f"{g.mean():+.4f} ({g.std() / np.sqrt(len(g)):.4f})"),
    })
    parts = []
    for name, sub in table.groupby(level="dataset", sort=False):
        parts.append(f"### {name}\n\n" + sub.droplevel("dataset").to_markdown(floatfmt=".4f"))
    return "\n\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--datasets", nargs="*", default=DATASETS)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(evaluate)(name, seed) for name in args.datasets for seed in range(args.splits))
    frame = pd.DataFrame([row for split in rows for row in split])
    text = (f"# The pool against its own candidates ({C.machine_line(C.machine_info())})\n\n"
            f"`python benchmarks/diagnose_pool.py`: {args.splits} splits, the base layers of "
            "`bench_combiners.py`. Per candidate of skcfe's default library: its pooled "
            "inner-CV PR-AUC (mean over splits), the splits where that score was the best, its "
            "mean weight in the pool, and its test PR-AUC minus skcfe's default (mean (SE)).\n\n"
            + report(frame) + "\n")
    (HERE / "results" / "pool_diagnosis.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
