"""Reproduce CF-Ensemble's published class-weighting and focal-loss scenarios.

Run::

    python benchmarks/reproduce_claims.py            # 20 seeds (about a minute)
    python benchmarks/reproduce_claims.py --quick    # 5 seeds

The scenario (10% positives, 500 training instances, 10 classifiers) is drawn
with ``skcfe.datasets.make_probability_matrix``: 500 training rows and 2000
held-out rows of the same draw (same classifiers, same subgroups), split
stratified. The published claims:

1. class weighting: without class weights a weakly trained aggregator
   "collapses" to a PR-AUC near the positive rate; with class weights it
   recovers;
2. focal loss: gamma = 2 alone, class weights alone, and both.

Every cell reports held-out PR-AUC (median and IQR over seeds) of

- skcfe, whose aggregator is trained to convergence (L-BFGS on the exact
  focal loss), fitted on the matrix directly;
- a deliberately weak aggregator, for contrast: a logistic model on the same
  reconstructed matrix, trained by a few plain gradient steps from a zero
  initialization (weights and intercept), 1, 10 or 100 steps, on the same loss (focal loss with
  the cell's gamma, class weights when the cell uses them). This is how the
  reference implementation trained its aggregator, and it is what collapses.

Collapse should not happen to skcfe in any cell: that is what this shows.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedShuffleSplit
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

from skcfe import focal_loss_gradient
from skcfe.datasets import make_probability_matrix

HERE = Path(__file__).resolve().parent
N_TRAIN, N_TEST, N_CLASSIFIERS, POSITIVE_RATE = 500, 2000, 10, 0.1
CELLS = [  # (label, focal_gamma, use_class_weights)
    ("cross-entropy, no class weights", 0.0, False),
    ("cross-entropy + class weights", 0.0, True),
    ("focal gamma=2, no class weights", 2.0, False),
    ("focal gamma=2 + class weights", 2.0, True),
]
WEAK_STEPS, WEAK_LR = (1, 10, 100), 0.5


def draw(seed):
    data = make_probability_matrix(N_TRAIN + N_TEST, N_CLASSIFIERS, positive_rate=POSITIVE_RATE,
                                   random_state=seed)
    split = StratifiedShuffleSplit(1, train_size=N_TRAIN, random_state=seed)
    train, test = next(split.split(data.R, data.y))
    return data.R[train], data.y[train], data.R[test], data.y[test]


def weak_aggregator(F, y, gamma, class_weights, steps, lr=WEAK_LR):
    """A few plain gradient steps of a logistic model from zero (the reference's training)."""
    n, q = F.shape
    if class_weights:
        counts = np.bincount(y, minlength=2)
        s = (n / (2 * counts))[y]
    else:
        s = np.ones(n)
    w, b = np.zeros(q), 0.0
    for _ in range(steps):
        g = focal_loss_gradient(y, F @ w + b, gamma=gamma, sample_weight=s)  # d mean loss / d z
        w -= lr * (F.T @ g)
        b -= lr * g.sum()
    return w, b


def run(seeds, params, log):
    rows = {label: {"skcfe": [], "skcfe_brier": [], **{f"weak_{k}": [] for k in WEAK_STEPS}}
            for label, _, _ in CELLS}
    extra = {"stacking (LR on R)": [], "mean of R": [], "positive rate (test)": []}
    for seed in seeds:
        R_train, y_train, R_test, y_test = draw(seed)
        proba, _, _, _ = C.stacking_proba(R_train, y_train, R_test)
        extra["stacking (LR on R)"].append(C.pr_auc(y_test, proba))
        extra["mean of R"].append(C.pr_auc(y_test, C.as_proba(R_test.mean(axis=1))))
        extra["positive rate (test)"].append(float(np.mean(y_test)))
        for label, gamma, cw in CELLS:
            model = C.fit_on_matrix(R_train, y_train, 2, random_state=seed,
                                    **{**params, "focal_gamma": gamma, "use_class_weights": cw})
            proba = model.predict_proba(R_test)
            rows[label]["skcfe"].append(C.pr_auc(y_test, proba))
            rows[label]["skcfe_brier"].append(C.brier(y_test, proba))
            # The weak aggregator sees skcfe's own reconstruction of the same rows
            # (the representation predict computes), so only the training differs.
            _, F_train = model._reconstruct(R_train)
            _, F_test = model._reconstruct(R_test)
            for steps in WEAK_STEPS:
                w, b = weak_aggregator(F_train, y_train, gamma, cw, steps)
                p = expit(F_test @ w + b)
                rows[label][f"weak_{steps}"].append(C.pr_auc(y_test, C.as_proba(p)))
        log(f"seed {seed}: " + ", ".join(
            f"{label.split(',')[0].split(' +')[0]}{'+cw' if cw else ''}: skcfe "
            f"{rows[label]['skcfe'][-1]:.3f} weak {rows[label][f'weak_{WEAK_STEPS[1]}'][-1]:.3f}"
            for label, _, cw in CELLS))
    return rows, extra


def markdown(payload):
    lines = [
        "# CF-Ensemble's class-weighting and focal-loss claims, reproduced",
        "",
        f"Measured {C.machine_line(payload['machine'])}.",
        "",
        (
            f"`make_probability_matrix`: {POSITIVE_RATE:.0%} positives, {N_CLASSIFIERS} "
            f"classifiers, {N_TRAIN} training rows, {N_TEST} held-out rows of the same draw; "
            f"{len(payload['seeds'])} seeds, held-out PR-AUC median (IQR). skcfe parameters: "
            f"`{payload['params'] or 'package defaults'}`. Weak aggregator: "
            f"{', '.join(map(str, WEAK_STEPS))} plain gradient steps (step size {WEAK_LR}) of a "
            "logistic model on skcfe's reconstructed matrix from a zero start, with the cell's "
            "loss."
        ),
        "",
    ]
    rows = []
    for label, r in payload["cells"].items():
        rows.append([label, C.fmt_summary(C.summarize(r["skcfe"]), 3),
                     *(C.fmt_summary(C.summarize(r[f"weak_{k}"]), 3) for k in WEAK_STEPS),
                     C.fmt_summary(C.summarize(r["skcfe_brier"]), 4)])
    lines.append(C.markdown_table(
        ["cell", "skcfe PR-AUC (trained to convergence)",
         *(f"weak: {k} step{'s' if k > 1 else ''}" for k in WEAK_STEPS), "skcfe Brier"], rows))
    lines += ["", "Reference points on the same rows:", ""]
    lines.append(C.markdown_table(["", "PR-AUC"], [[k, C.fmt_summary(C.summarize(v), 3)]
                                                   for k, v in payload["reference"].items()]))
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 seeds")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0..19; quick 0..4)")
    parser.add_argument("--package-defaults", action="store_true",
                        help="run skcfe with its package defaults instead of the recommended ones")
    parser.add_argument("--out", default=str(HERE / "results"), help="output folder")
    args = parser.parse_args(argv)
    seeds = args.seeds or list(range(5 if args.quick else 20))
    from bench_quality import recommended, resolve

    params = {} if args.package_defaults else resolve(recommended(), N_CLASSIFIERS)
    log = C.Progress()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        cells, reference = run(seeds, params, log)
    payload = {"machine": C.machine_info(), "seeds": seeds, "params": params,
               "cells": cells, "reference": reference}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    C.write_json(out / f"claims{suffix}.json", payload, compact=True)
    report = markdown(payload)
    (out / f"claims{suffix}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
