"""ALS against the torch backend, side by side on the same problems.

Run: python benchmarks/bench_backends.py [--quick] [--threads N] [--repeats N]

Every backend gets the same Problem (R of the training rows, 'certainty'
confidence, balanced class weights), the estimator's default settings with
focal_gamma=2 (as the estimator passes them) and the same seed. Scores: the
exact CF-Ensemble objective at the returned parameters, and "trained", the same
plus the aggregator's penalty, which both backends minimize; held-out PR-AUC
(fold-in, then the aggregator) and in-sample PR-AUC (the collapse check); fit
seconds, median over repeats of ``backend.fit``. Backends: ALS; torch L-BFGS on
the CPU (and CUDA when present); torch Adam; on small problems also L-BFGS at
tol=1e-8 and Adam for 1000 epochs (how close each gets to the optimum). Data:
``skcfe.datasets.make_probability_matrix``. Writes
``results/backends[_cuda][_quick].{json,md,png}`` (``_cuda`` with a CUDA device).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import CFEnsembleClassifier
from skcfe._aggregator import aggregate, raw_to_proba
from skcfe._confidence import apply_confidence, fit_confidence, label_targets
from skcfe.backends import Problem, Settings, TorchOptions, als, fold_in
from skcfe.datasets import make_probability_matrix

try:
    import torch

    from skcfe.backends import torch as torch_backend
except ImportError:  # the ALS rows still run
    torch = torch_backend = None


def build_problem(R, y, n_classes):
    """The Problem CFEnsembleClassifier builds: certainty confidence, class weights."""
    n = len(y)
    labeled = np.ones(n, dtype=bool)
    w = np.ones(n)
    T = label_targets(y, n_classes, R.shape[1] // (1 if n_classes == 2 else n_classes))
    C, state = fit_confidence("certainty", R, T, labeled, w, n_classes=n_classes,
                              label_aware_alpha=1.0)
    class_weight = n / (n_classes * np.bincount(y, minlength=n_classes))
    problem = Problem(R=R, C=C, C_free=apply_confidence(state, R), T=T, y=y, labeled=labeled,
                      row_weight=w, sample_weight=class_weight[y], n_classes=n_classes)
    return problem, state


def problems(quick):
    """(name, n_train, n_test, n_classifiers, n_classes, positive_rate)."""
    specs = [
        ("binary 10% pos, n=1k", 1000, 4000, 10, 2, 0.1),
        ("3 classes, n=1k", 1000, 4000, 8, 3, 0.1),
        ("binary 10% pos, n=10k", 10_000, 10_000, 10, 2, 0.1),
    ]
    if not quick:
        specs += [
            ("binary 2% pos, n=5k", 5000, 20_000, 20, 2, 0.02),
            ("3 classes, n=20k", 20_000, 20_000, 8, 3, 0.1),
            ("binary 10% pos, n=100k", 100_000, 20_000, 10, 2, 0.1),
        ]
    return specs


def backends(n_train):
    """(label, module, extra settings) for every backend and solver compared."""
    rows = [("ALS", als, {})]
    if torch_backend is None:
        return rows
    rows.append(("torch L-BFGS (cpu)", torch_backend, {"device": "cpu"}))
    if torch.cuda.is_available():
        rows.append(("torch L-BFGS (cuda)", torch_backend, {"device": "cuda"}))
    rows.append(("torch Adam lr=0.05", torch_backend, {"solver": "adam"}))
    if n_train <= 5000:
        # How close each solver gets to the optimum when given the time.
        rows.append(("torch L-BFGS, tol=1e-8", torch_backend, {"max_iter": 1000, "tol": 1e-8}))
        rows.append(("torch Adam lr=0.05, 1000 epochs", torch_backend,
                     {"solver": "adam", "max_iter": 1000, "tol": 0.0}))
    return rows


def make_settings(extra, n_train, n_columns):
    """The estimator's default settings with focal_gamma=2, as the estimator passes them."""
    extra = dict(extra)
    defaults = CFEnsembleClassifier().get_params()
    return Settings(
        latent_dim=defaults["latent_dim"] or n_columns,
        rho=defaults["rho"],
        lambda_reg=defaults["lambda_reg"],
        focal_gamma=2.0,
        aggregator=defaults["aggregator"],
        aggregator_alpha=defaults["aggregator_alpha"] / n_train,
        aggregator_input=defaults["aggregator_input"],
        max_iter=extra.pop("max_iter", defaults["max_iter"]),
        tol=extra.pop("tol", defaults["tol"]),
        torch=TorchOptions(**{"learning_rate": defaults["learning_rate"], "device": "cpu",
                              **extra}),
    )


def settings_line():
    p = CFEnsembleClassifier().get_params()
    keys = ("latent_dim", "rho", "lambda_reg", "aggregator_alpha", "aggregator_input",
            "max_iter", "tol")
    return ", ".join(f"{k}={p[k]}" for k in keys) + (
        ", focal_gamma=2, certainty confidence, balanced class weights"
    )


def predict(result, settings, problem, state, R):
    """The numpy path of predict_proba (without the posterior correction, rank-neutral)."""
    X = result.classifier_factors
    Y = fold_in(R, apply_confidence(state, R), X, settings.lambda_reg, problem.confidence_scale)
    raw = aggregate(Y @ X.T, settings.aggregator, result.coef, result.intercept, problem.n_classes,
                    settings.aggregator_input)
    return raw_to_proba(raw)


def run_backend(module, settings, problem, state, R_test, y_test, repeats):
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = module.fit(problem, settings, np.random.default_rng(0))
        seconds.append(time.perf_counter() - start)
    trained = None
    if torch_backend is not None:
        trained = torch_backend.objective(problem, settings, result.classifier_factors,
                                          result.coef, result.intercept)["trained"]
    return {
        "objective": result.history["objective"][-1],
        "trained": trained,
        "reconstruction": result.history["reconstruction"][-1],
        "supervised": result.history["supervised"][-1],
        "pr_auc_test": H.pr_auc(y_test, predict(result, settings, problem, state, R_test)),
        "pr_auc_train": H.pr_auc(problem.y, predict(result, settings, problem, state, problem.R)),
        "seconds": float(np.median(seconds)),
        "seconds_all": seconds,
        "n_iter": result.n_iter,
        "converged": result.converged,
    }


def table(results):
    """One row per problem and backend, then the plain-averaging baselines; cells as text."""
    rows = pd.DataFrame([{"problem": name, "backend": label, **r}
                         for name, entry in results.items()
                         for label, r in entry["backends"].items()])
    best = rows["trained"] <= rows.groupby("problem")["trained"].transform("min") + 1e-9
    text = pd.DataFrame({
        "problem": rows["problem"], "backend": rows["backend"],
        "objective": rows["objective"].map("{:.5f}".format),
        "trained obj.": rows["trained"].map("{:.5f}".format).where(rows["trained"].notna(), "n/a")
        .where(~best, "**" + rows["trained"].map("{:.5f}".format) + "**"),
        "PR-AUC held-out": rows["pr_auc_test"].map("{:.3f}".format),
        "PR-AUC train": rows["pr_auc_train"].map("{:.3f}".format),
        "fit s (median)": rows["seconds"].map("{:.3f}".format),
        "epochs": rows["n_iter"].astype(str),
        "converged": rows["converged"].map({True: "yes", False: "no"}),
    })
    baselines = pd.DataFrame([{"problem": name, "backend": "*mean of R / best column*",
                               "PR-AUC held-out": f"{e['pr_auc_mean_of_R']:.3f} / "
                                                  f"{e['pr_auc_best_column']:.3f}"}
                              for name, e in results.items()])
    order = {name: k for k, name in enumerate(results)}
    return (pd.concat([text, baselines]).fillna("")
            .sort_values("problem", key=lambda p: p.map(order), kind="stable"))


def plot(results, path):
    """Objective relative to ALS's, held-out PR-AUC and fit seconds of every backend."""
    rows = pd.DataFrame([{"problem": name, "backend": label, **r}
                         for name, entry in results.items()
                         for label, r in entry["backends"].items()])
    als_trained = rows[rows["backend"] == "ALS"].set_index("problem")["trained"]
    rows["trained"] = rows["trained"] / rows["problem"].map(als_trained)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
    for ax, (key, ylabel, title) in zip(axes, [
        ("trained", "trained objective / ALS's", "exact objective (lower is better)"),
        ("pr_auc_test", "PR-AUC", "held-out PR-AUC"),
        ("seconds", "seconds (log scale)", "fit seconds (median)"),
    ]):
        wide = rows.pivot(index="problem", columns="backend", values=key)
        wide.reindex(index=list(results), columns=list(dict.fromkeys(rows["backend"]))).plot.bar(
            ax=ax, rot=20, legend=False, logy=key == "seconds")
        ax.set(title=title, xlabel="problem", ylabel=ylabel)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_ylim(rows["trained"].min() - 0.05, rows["trained"].max() + 0.02)
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[1].set_ylim(0.5, 1.0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three problems up to n=10k")
    parser.add_argument("--repeats", type=int, default=None,
                        help="fits timed per backend (default 3 quick, 5 full)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=H.RESULTS)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    if torch is not None:
        torch.set_num_threads(args.threads)
    # One thread by default keeps timings honest on a shared machine, where
    # contended OpenMP/BLAS threads slow small problems down many times.
    with threadpool_limits(limits=args.threads):
        run(args, repeats)


def run(args, repeats):
    start = time.perf_counter()
    results = {}
    for name, n_train, n_test, m, n_classes, rate in problems(args.quick):
        data = make_probability_matrix(n_train + n_test, m, n_classes=n_classes,
                                       positive_rate=rate, random_state=args.seed)
        R, y = data.R, data.y
        R_train, R_test, y_train, y_test = train_test_split(R, y, train_size=n_train, stratify=y,
                                                            random_state=args.seed)
        problem, state = build_problem(R_train, y_train, n_classes)
        entry = {"n_train": n_train, "n_test": n_test, "n_classifiers": m,
                 "n_classes": n_classes, "positive_rate": rate, "backends": {},
                 "pr_auc_mean_of_R": H.pr_auc(y_test, _mean_proba(R_test, n_classes)),
                 "pr_auc_best_column": max(H.pr_auc(y_test, _mean_proba(columns, n_classes))
                                           for columns in np.split(R_test, m, axis=1))}
        for label, module, extra in backends(n_train):
            settings = make_settings(extra, n_train, R_train.shape[1])
            r = run_backend(module, settings, problem, state, R_test, y_test, repeats)
            entry["backends"][label] = r
            print(f"{name:24s} {label:34s} objective={r['objective']:.5f} "
                  f"trained={r['trained'] or float('nan'):.5f} PR-AUC test={r['pr_auc_test']:.3f} "
                  f"train={r['pr_auc_train']:.3f} fit={r['seconds']:.3f}s epochs={r['n_iter']} "
                  f"[{time.perf_counter() - start:.0f}s]", flush=True)
        results[name] = entry
    elapsed = time.perf_counter() - start

    device = "no torch"
    if torch is not None:
        device = f"torch {torch.__version__}, " + (
            f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
            else "no CUDA device")
    meta = {**H.machine_info(), "device": device, "threads": args.threads, "quick": args.quick,
            "repeats": repeats, "data": "skcfe.datasets.make_probability_matrix",
            "settings": settings_line(), "seconds": elapsed}
    report = (
        f"### Backends: ALS vs torch ({H.machine_line(meta)}; {device}, {args.threads} "
        f"thread(s), {'--quick, ' if args.quick else ''}median of {repeats} fits; "
        f"{meta['settings']}; data: {meta['data']}; {elapsed:.0f} s)\n\n"
        + table(results).to_markdown(index=False, disable_numparse=True,
                                     colalign=("left", "left", *["right"] * 7))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch is not None and torch.cuda.is_available()
    stem = "backends" + ("_cuda" if cuda else "") + ("_quick" if args.quick else "")
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (args.out / f"{stem}.md").write_text(report + "\n")
    plot(results, args.out / f"{stem}.png")
    print()
    print(report)


def _mean_proba(R, n_classes):
    """Averaged base probabilities as (n, K): the plain-averaging baseline."""
    if n_classes == 2:
        p = R.mean(axis=1)
        return np.column_stack([1 - p, p])
    per_class = R.reshape(len(R), -1, n_classes).mean(axis=1)
    return per_class / per_class.sum(axis=1, keepdims=True)


if __name__ == "__main__":
    main()
