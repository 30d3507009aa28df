"""Few labels: does skcfe with the unlabeled rows beat what a careful user trains on the labeled ones?

For each binary data set, split (stratified 70/30, the splits of
``bench_combiners.py``) and labeled fraction (5%, 10%, 20% of the training
rows, stratified), the base estimators (``skcfe.default_estimators``) are
fitted on the labeled rows only: out-of-fold probabilities of the labeled
rows (unshuffled 5-fold StratifiedKFold, skcfe's folds) and probabilities of
the unlabeled training rows and the test rows from the estimators refit on
every labeled row. Every combiner sees that same matrix:

* the rivals of ``bench_combiners.py`` (StackingClassifier's final
  estimator, LR on logit(R), the best single model by out-of-fold PR-AUC,
  greedy ensemble selection, non-negative logit stacking, soft voting),
  trained on the labeled rows;
* ``skcfe labeled only``: ``CFEnsembleClassifier('precomputed')`` on the
  labeled rows;
* ``skcfe default``: the same given the unlabeled rows too, marked -1
  (``unlabeled_label=-1``), and ``skcfe cf`` with ``combiner='cf'``;
* ``skcfe without factor, voting``: the default given the unlabeled rows,
  its library without the two candidates it adds for them (an ablation:
  what those candidates buy).

A cell (data set, fraction) needs at least 5 labeled positives in every
split (one per fold of the base layer); cells with fewer are skipped and
listed. Scored by PR-AUC on the test rows; paired differences of
``skcfe default`` minus each rival per cell (mean, SE, median, wins).

Run::

    python benchmarks/bench_few_labels.py             # 20 splits, every binary set
    python benchmarks/bench_few_labels.py --quick     # 5 splits, a few sets, 10%
    python benchmarks/bench_few_labels.py --first-split 20 --splits 10 --out few_labels_fresh
                                                      # splits no design decision saw

Writes ``results/few_labels.{csv,md,png}``; the base layer is cached with
joblib.Memory in ``~/.cache/skcfe-benchmarks/few_labels``.
"""

import argparse
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from joblib import Memory, Parallel, delayed
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from bench_combiners import BINARY, RIVALS, TEST_SIZE, cell, load_dataset, paired, plot_paired

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe._selection import candidate_library

HERE = Path(__file__).resolve().parent
FRACTIONS = (0.05, 0.1, 0.2)
MIN_POSITIVES = 5
QUICK = ("kc1", "vehicle0", "satimage", "synth 5% hard")
UNLABELED = -1
memory = Memory(C.cache_dir() / "few_labels", verbose=0)


@memory.cache
def base_layer(name, seed, fraction):
    """``(base, R_unlabeled)`` for one split and labeled fraction, or None if too few positives.

    ``base.R_train`` holds the labeled rows' out-of-fold probabilities and
    ``base.R_test`` the test rows'; ``R_unlabeled`` the unlabeled training
    rows' (from the estimators refit on the labeled rows).
    """
    X, y = load_dataset(name)
    train, test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y,
                                   random_state=seed)
    labeled, unlabeled = train_test_split(train, train_size=fraction, stratify=y[train],
                                          random_state=seed)
    if np.bincount(y[labeled], minlength=2).min() < MIN_POSITIVES:
        return None
    rows = np.concatenate([unlabeled, test])
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        base = C.base_matrices(default_estimators(seed), X[labeled], y[labeled], X[rows], y[rows])
    n_unl = len(unlabeled)
    R_unlabeled = base.R_test[:n_unl]
    base.R_test, base.y_test = base.R_test[n_unl:], base.y_test[n_unl:]
    return base, R_unlabeled


def skcfe(base, R_unlabeled, seed, **params):
    """skcfe on the labeled rows, plus the unlabeled ones when ``R_unlabeled`` is given."""
    R, y = base.R_train, base.y_train
    if R_unlabeled is not None:
        R = np.vstack([R, R_unlabeled])
        y = np.concatenate([y, np.full(len(R_unlabeled), UNLABELED)])
        params["unlabeled_label"] = UNLABELED
    clf = CFEnsembleClassifier("precomputed", random_state=seed, **params).fit(R, y)
    return clf.predict_proba(base.R_test), clf.combiner_


def supervised_library(*args, **kwargs):
    """``candidate_library`` without the candidates it adds for unlabeled rows."""
    return [(name, candidate) for name, candidate in
            candidate_library(*args, **kwargs)
            if name not in ("factor", "voting")]


def evaluate(name, seed, fraction):
    """Every combiner's test scores on one split and fraction (one row each); [] if skipped."""
    layer = base_layer(name, seed, fraction)
    if layer is None:
        return []
    base, R_unlabeled = layer
    cell_name = f"{name} {fraction:.0%}"
    rows = []

    def record(model, proba, **extra):
        metrics = C.scores(base.y_test, np.clip(proba, 0.0, 1.0))
        rows.append({"dataset": cell_name, "split": seed, "model": model, **metrics, **extra})

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for model, rival in RIVALS.items():
            record(model, rival(base))
        proba, chosen = skcfe(base, R_unlabeled, seed)
        record("skcfe default", proba, chosen=chosen)
        record("skcfe labeled only", skcfe(base, None, seed)[0])
        record("skcfe cf", skcfe(base, R_unlabeled, seed, combiner="cf")[0])
        with mock.patch("skcfe._combiner.candidate_library", supervised_library):
            record("skcfe without factor, voting", skcfe(base, R_unlabeled, seed)[0])
    return rows


def report(frame, skipped):
    table = paired(frame, "pr_auc")
    wide = table.assign(cell=table.apply(cell, axis=1)).pivot(
        index="dataset", columns="rival", values="cell")
    means = frame.pivot_table(index="dataset", columns="model", values="pr_auc")
    core = table[table.rival.isin(["stacking", "LR on logit(R)", "best single (OOF)"])]
    losses = core[core.z < -2]
    wins = table[(table.rival == "stacking") & (table.z > 2)]
    n_cells = frame.dataset.nunique()
    choices = frame[frame.model == "skcfe default"].groupby("dataset")["chosen"].agg(
        lambda c: ", ".join(f"{k} {v}" for k, v in c.value_counts().items()))
    lines = [
        f"# Few labels ({C.machine_line(C.machine_info())})", "",
        ("PR-AUC on the test rows. Paired differences of skcfe default (given the unlabeled "
         "rows) minus each rival (trained on the labeled rows): mean (SE), median "
         "[splits where skcfe is at least as good]."), "",
        "## Verdict (issue 11, part 3)", "",
        f"- Better than StackingClassifier by more than 2 SE in {len(wins)} of {n_cells} cells"
        + (f": {', '.join(wins.dataset)}." if len(wins) else "."),
        "- Worse than StackingClassifier, LR on logit(R) or the best single model by more "
        "than 2 SE: " + ("; ".join(f"{r.dataset} vs {r.rival} {r['mean']:+.4f} (SE {r.se:.4f})"
                                   for _, r in losses.iterrows()) or "none") + ".",
        "- Skipped (fewer than 5 labeled positives in a split): "
        + (", ".join(skipped) or "none") + ".", "",
        "## Paired PR-AUC differences", "", wide.to_markdown(), "",
        "## Mean PR-AUC", "", means.to_markdown(floatfmt=".4f"), "",
        "## What skcfe default chose (splits)", "", choices.to_markdown(), "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--splits", type=int, default=None)
    parser.add_argument("--first-split", type=int, default=0,
                        help="seed of the first split (later ones: fresh splits)")
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--fractions", nargs="*", type=float, default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--base-only", action="store_true")
    parser.add_argument("--out", default=None, help="results stem (default few_labels)")
    args = parser.parse_args(argv)
    names = args.datasets or (QUICK if args.quick else BINARY)
    fractions = args.fractions or ((0.1,) if args.quick else FRACTIONS)
    n_splits = args.splits or (5 if args.quick else 20)
    seeds = range(args.first_split, args.first_split + n_splits)
    tasks = [(n, s, f) for n in names for f in fractions for s in seeds]
    if args.base_only:
        Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(base_layer)(*t) for t in tasks)
        return
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(evaluate)(*t) for t in tasks)
    frame = pd.DataFrame([row for task in rows for row in task])
    done = {(r["dataset"], r["split"]) for task in rows for r in task}
    cells = [f"{n} {f:.0%}" for n in names for f in fractions]
    # a cell counts only when every split could be fitted, so differences stay paired
    complete = [c for c in cells if all((c, s) in done for s in seeds)]
    skipped = [c for c in cells if c not in complete]
    frame = frame[frame.dataset.isin(complete)]
    stem = HERE / "results" / (args.out or ("few_labels_quick" if args.quick else "few_labels"))
    frame.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
    stem.with_suffix(".md").write_text(report(frame, skipped))
    plot_paired(frame, stem.with_suffix(".png"),
                "PR-AUC: skcfe default (with unlabeled rows) minus rival (mean, 2 SE)",
                "data set, labeled fraction")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
