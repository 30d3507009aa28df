"""Few labels: does skcfe given the unlabeled rows beat what a careful user trains on the labeled ones?

On ``bench_combiners.py``'s splits, 5/10/20% of the training rows are labeled
(stratified); the base estimators see only those (out-of-fold matrix; refit for
the unlabeled and test rows). Rivals and ``skcfe labeled only`` train on the
labeled rows; ``skcfe default`` and ``skcfe cf`` also get the unlabeled rows
(``unlabeled_label=-1``); ``skcfe without factor, voting`` gets them with the
candidates it would use without them (``combiner=default_candidates(...)``).
A cell (data set, fraction) needs 5 labeled positives in every split.

Run::

    python benchmarks/bench_few_labels.py              # results/few_labels.*
    python benchmarks/bench_few_labels.py --first-split 20 --splits 10 --out few_labels_fresh
    python benchmarks/bench_few_labels.py --quick      # 2 splits, 4 sets, 10%, to output/
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import default_estimators
from skcfe.level1.candidates import default_candidates

FRACTIONS = (0.05, 0.1, 0.2)
MIN_POSITIVES = 5
QUICK = ("kc1", "vehicle0", "satimage", "synth 5% hard")
memory = H.cache("few_labels")


@memory.cache
def base_layer(name, seed, fraction):
    """``(base, R_unlabeled)`` of one split and fraction, or None with too few positives."""
    X, y = H.load(name)
    train, test = H.split(y, seed)
    labeled, unlabeled = train_test_split(train, train_size=fraction, stratify=y[train],
                                          random_state=seed)
    if np.bincount(y[labeled], minlength=2).min() < MIN_POSITIVES:
        return None
    rows = np.concatenate([unlabeled, test])
    base = H.base_matrices(default_estimators(seed), X[labeled], y[labeled], X[rows], y[rows])
    n = len(unlabeled)
    R_unlabeled = base.R_test[:n]
    base.R_test, base.y_test = base.R_test[n:], base.y_test[n:]
    return base, R_unlabeled


def evaluate(name, seed, fraction):
    """Every combiner's test scores on one split and fraction; [] if skipped."""
    layer = base_layer(name, seed, fraction)
    if layer is None:
        return []
    base, R_unlabeled = layer
    R = np.vstack([base.R_train, R_unlabeled])
    y = np.concatenate([base.y_train, np.full(len(R_unlabeled), -1)])
    rows = []

    def record(model, proba, **extra):
        rows.append({"dataset": f"{name} {fraction:.0%}", "split": seed, "model": model,
                     **H.scores(base.y_test, proba), **extra})

    def skcfe(**params):
        return H.skcfe_fit(base, seed, R, y, unlabeled_label=-1, **params)

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for model, rival in H.RIVALS.items():
            record(model, rival(base))
        model, proba, _ = skcfe()
        record("skcfe default", proba, chosen=model.combiner_)
        record("skcfe labeled only", H.skcfe_fit(base, seed)[1])
        record("skcfe cf", skcfe(combiner="cf")[1])
        record("skcfe without factor, voting",
               skcfe(combiner=default_candidates(base.names, 2, semi_supervised=False))[1])
    return rows


def report(frame, skipped):
    table = H.paired(frame)
    core = table[table.rival.isin(["stacking", "LR on logit(R)", "best single (OOF)"])]
    wins = table[(table.rival == "stacking") & (table.z > 2)]
    means = frame.pivot_table(index="dataset", columns="model", values="pr_auc")
    return "\n".join([
        f"# Few labels ({H.machine_line()})", "",
        ("PR-AUC on the test rows. Paired differences of skcfe default (given the unlabeled "
        "rows) minus each rival (trained on the labeled rows): mean (SE), median [splits where "
        "skcfe is at least as good]."), "", "## Verdict", "",
        (f"- Better than StackingClassifier by more than 2 SE in {len(wins)} of "
        f"{frame.dataset.nunique()} cells: {', '.join(wins.dataset) or 'none'}."),
        ("- Worse than StackingClassifier, LR on logit(R) or the best single model by more than "
        f"2 SE (** also by more than {H.LOSS_MARGIN}): {H.listing(core[core.z < -2])}."),
        (f"- Skipped (fewer than {MIN_POSITIVES} labeled positives in a split): "
        f"{', '.join(skipped) or 'none'}."), "",
        "## Paired PR-AUC differences", "", H.paired_markdown(table), "",
        "## Mean PR-AUC", "", means.to_markdown(floatfmt=".4f"), "",
        "## What skcfe default chose (splits)", "", H.choices(frame), ""])


def main(argv=None):
    parser = H.parser(__doc__)
    parser.add_argument("--fractions", nargs="*", type=float, default=None)
    args = parser.parse_args(argv)
    names = args.datasets or (QUICK if args.quick else H.BINARY)
    fractions = args.fractions or ((0.1,) if args.quick else FRACTIONS)
    seeds = H.seeds(args)
    stem = H.stem(args, "few_labels")
    frame = H.run(evaluate, [(n, s, f) for n in names for f in fractions for s in seeds],
                  args, stem)
    # a cell counts only when every split could be fitted, so differences stay paired
    cells = [f"{n} {f:.0%}" for n in names for f in fractions]
    done = frame.groupby("dataset").split.nunique()
    skipped = [c for c in cells if done.get(c, 0) < len(seeds)]
    frame = frame[~frame.dataset.isin(skipped)]
    stem.with_suffix(".md").write_text(report(frame, skipped))
    H.plot_paired(frame, stem.with_suffix(".png"), "PR-AUC: skcfe default (with unlabeled rows) "
                  "minus rival (mean, 2 SE)", "data set, labeled fraction")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
