"""Reproduce CF-Ensemble's published class-weighting and focal-loss scenarios.

Run::

    python benchmarks/reproduce_claims.py            # 20 seeds, results/claims.*
    python benchmarks/reproduce_claims.py --quick    # 5 seeds, to output/

10% positives, 10 classifiers (``skcfe.datasets.make_probability_matrix``), 500
training and 2000 held-out rows of one draw. The claims: without class weights a
weakly trained aggregator collapses to a PR-AUC near the positive rate, with them
it recovers; focal loss (gamma = 2) alone, class weights alone, both. Held-out
PR-AUC (median, IQR over seeds) of skcfe's CF aggregator (``combiner='cf'``,
trained to convergence on the matrix) and of the reference's weak aggregator: a
logistic model on skcfe's reconstructed matrix, 1, 10 or 100 plain gradient
steps from zero on the cell's loss. Collapse should not happen to skcfe.
"""

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedShuffleSplit
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import CFEnsembleClassifier, focal_loss_gradient
from skcfe.datasets import make_probability_matrix

N_TRAIN, N_TEST, N_CLASSIFIERS, POSITIVE_RATE = 500, 2000, 10, 0.1
CELLS = [  # (label, focal_gamma, use_class_weights)
    ("cross-entropy, no class weights", 0.0, False),
    ("cross-entropy + class weights", 0.0, True),
    ("focal gamma=2, no class weights", 2.0, False),
    ("focal gamma=2 + class weights", 2.0, True),
]
WEAK_STEPS, WEAK_LR = (1, 10, 100), 0.5
SKCFE = "skcfe (trained to convergence)"
log = logging.getLogger("benchmarks").info


def draw(seed):
    data = make_probability_matrix(N_TRAIN + N_TEST, N_CLASSIFIERS, positive_rate=POSITIVE_RATE,
                                   random_state=seed)
    split = StratifiedShuffleSplit(1, train_size=N_TRAIN, random_state=seed)
    train, test = next(split.split(data.R, data.y))
    return data.R[train], data.y[train], data.R[test], data.y[test]


def weak_aggregator(F, y, gamma, class_weights, steps, lr=WEAK_LR):
    """A few plain gradient steps of a logistic model from zero (the reference's training)."""
    n, q = F.shape
    s = (n / (2 * np.bincount(y, minlength=2)))[y] if class_weights else np.ones(n)
    w, b = np.zeros(q), 0.0
    for _ in range(steps):
        g = focal_loss_gradient(y, F @ w + b, gamma=gamma, sample_weight=s)  # d mean loss / d z
        w -= lr * (F.T @ g)
        b -= lr * g.sum()
    return w, b


def run(seeds, params):
    """One record per seed, cell and model: held-out PR-AUC (and skcfe's Brier)."""
    records = []
    for seed in seeds:
        R_train, y_train, R_test, y_test = draw(seed)
        reference = {
            "stacking (LR on R)": H.pr_auc(y_test, H.lr(R_train, y_train, R_test)),
            "mean of R": H.pr_auc(y_test, H.as_proba(R_test.mean(axis=1))),
            "positive rate (test)": float(np.mean(y_test)),
        }
        records += [{"seed": seed, "cell": "reference", "model": k, "pr_auc": v}
                    for k, v in reference.items()]
        for label, gamma, cw in CELLS:
            model = CFEnsembleClassifier("precomputed", random_state=seed, **{
                **params, "focal_gamma": gamma, "use_class_weights": cw}).fit(R_train, y_train)
            proba = model.predict_proba(R_test)
            records.append({"seed": seed, "cell": label, "model": SKCFE,
                            **{k: H.scores(y_test, proba)[k] for k in ("pr_auc", "brier")}})
            # The weak aggregator sees skcfe's own reconstruction of the same rows
            # (the representation predict computes), so only the training differs.
            _, F_train = model._reconstruct(R_train)
            _, F_test = model._reconstruct(R_test)
            for steps in WEAK_STEPS:
                w, b = weak_aggregator(F_train, y_train, gamma, cw, steps)
                records.append({"seed": seed, "cell": label,
                                "model": f"weak: {steps} step{'s' * (steps > 1)}",
                                "pr_auc": H.pr_auc(y_test, H.as_proba(expit(F_test @ w + b)))})
        last = pd.DataFrame(records[-4 * (1 + len(WEAK_STEPS)):])
        log(f"seed {seed}: skcfe PR-AUC " + ", ".join(
            f"{p:.3f}" for p in last.loc[last["model"] == SKCFE, "pr_auc"]))
    return pd.DataFrame(records)


def markdown(payload):
    runs = pd.DataFrame(payload["runs"])
    cells = runs[runs["cell"] != "reference"]
    table = H.median_iqr(cells, ["cell", "model"], "pr_auc", 3).unstack("model")
    table = table.reindex(index=[label for label, _, _ in CELLS],
                          columns=list(dict.fromkeys(cells["model"])))
    table["skcfe Brier"] = H.median_iqr(cells[cells["model"] == SKCFE], "cell", "brier", 4)
    reference = H.median_iqr(runs[runs["cell"] == "reference"], "model", "pr_auc", 3)
    return "\n".join([
        "# CF-Ensemble's class-weighting and focal-loss claims, reproduced",
        "",
        f"Measured {H.machine_line(payload['machine'])}.",
        "",
        (f"`make_probability_matrix`: {POSITIVE_RATE:.0%} positives, {N_CLASSIFIERS} "
        f"classifiers, {N_TRAIN} training rows, {N_TEST} held-out rows of the same draw; "
        f"{len(payload['seeds'])} seeds, held-out PR-AUC median (IQR). skcfe: "
        f"`CFEnsembleClassifier('precomputed', **{payload['params']})` with the cell's "
        f"focal_gamma and use_class_weights. Weak aggregator: {', '.join(map(str, WEAK_STEPS))} "
        f"plain gradient steps (step size {WEAK_LR}) of a logistic model on skcfe's "
        "reconstructed matrix from a zero start, with the cell's loss."),
        "",
        table.to_markdown(),
        "",
        "Reference points on the same rows:",
        "",
        reference.rename("PR-AUC").to_markdown(),
        "",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 seeds")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (default 0..19; quick 0..4)")
    parser.add_argument("--out", help="output folder (default results/; --quick: output/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    seeds = args.seeds or list(range(5 if args.quick else 20))
    # The claims are about the CF aggregator, not the selection among combiners.
    params = {"combiner": "cf"}
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        runs = run(seeds, params)
    payload = {"machine": H.machine_info(), "seeds": seeds, "params": params,
               "runs": json.loads(runs.to_json(orient="records", double_precision=6))}
    out = Path(args.out or (H.OUTPUT if args.quick else H.RESULTS))
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (out / f"claims{suffix}.json").write_text(json.dumps(payload))
    report = markdown(payload)
    (out / f"claims{suffix}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
