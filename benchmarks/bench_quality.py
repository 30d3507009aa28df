"""Quality benchmark: skcfe against the stacking alternatives on identical splits.

Run (full, every data set, 5 seeds; ``--torch`` adds the torch backend)::

    python benchmarks/bench_quality.py

Quick (3 seeds, fewer data sets, flights subsampled to 20,000 rows)::

    python benchmarks/bench_quality.py --quick

Other modes: ``--tune`` chooses skcfe's defaults by cross-validation on the
training splits and on a synthetic family (never on the test splits);
``--check`` verifies that the combiners on the cached base matrices equal
scikit-learn's StackingClassifier and skcfe's own fit; ``--report JSON``
rewrites the markdown of an earlier run.

Every model sees the same repeated stratified shuffled splits (30% test) and
the same base estimators (``skcfe.default_estimators(seed)``). The base
estimators' work is done once per split (``_common.base_matrices``, cached
with joblib.Memory in ``~/.cache/skcfe-benchmarks/quality``) and shared by
all combiners: skcfe is ``CFEnsembleClassifier(estimators='precomputed')`` on
those matrices. Reported fit and predict seconds include the base layer.
"""

import argparse
import importlib.util
import itertools
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from joblib import Memory
from sklearn.calibration import CalibrationDisplay
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import PrecisionRecallDisplay
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
from sklearn.preprocessing import LabelEncoder, label_binarize
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from datasets import load as load_real

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe.datasets import make_imbalanced_classification, make_probability_matrix

HERE = Path(__file__).resolve().parent
TEST_SIZE = 0.3
CV = 5
log = logging.getLogger("benchmarks").info

# Metric -> (label in the tables, decimals, larger is better).
METRICS = {"pr_auc": ("PR-AUC", 4, True), "roc_auc": ("ROC-AUC", 4, True),
           "log_loss": ("log loss", 4, False), "brier": ("Brier", 4, False),
           "ece": ("ECE", 4, False), "fit_s": ("fit s", 2, False),
           "predict_s": ("predict s", 2, False)}
RIVALS = ("stacking (LR)", "soft voting", "best single (inner CV)",
          "best single (oracle: best on test)", "LR on logit(R)")

# skcfe's parameters that --tune searches; the package's values are its incumbent.
TUNED_KEYS = ("latent_dim", "lambda_reg", "rho", "confidence", "aggregator_alpha",
              "aggregator_input", "use_class_weights")


def package_defaults():
    params = CFEnsembleClassifier().get_params()
    return {key: params[key] for key in TUNED_KEYS}


def skcfe_models(torch=False):
    """Label -> skcfe parameters of every skcfe column of the benchmark."""
    models = {"skcfe default": {}}
    for gamma, cw in itertools.product((0.0, 2.0), (False, True)):
        models[f"skcfe gamma={gamma:g} cw={int(cw)}"] = {"focal_gamma": gamma,
                                                        "use_class_weights": cw}
    if torch:
        models["skcfe torch"] = {"backend": "torch"}
        models["skcfe torch gamma=2 cw=1"] = {"backend": "torch", "focal_gamma": 2.0,
                                              "use_class_weights": True}
    return models


# -- data sets -----------------------------------------------------------------------

REAL = ("satimage", "default", "digits", "breast_cancer", "flights")
# The benchmark's synthetic problems: fixed draws (generator seed SYNTH_SEED);
# the tuning family uses other seeds and settings, so these stay unseen.
SYNTH_SEED = 20240
SYNTH_N = 10_000
SYNTHETIC = {
    f"synth {int(rate * 100)}% {level}": {"positive_rate": rate, "class_sep": sep}
    for rate in (0.01, 0.05, 0.10)
    for level, sep in (("hard", 1.0), ("easy", 2.0))
}
ALL_DATASETS = (*REAL, *SYNTHETIC)
QUICK_DATASETS = ("satimage", "default", "breast_cancer", "flights", "synth 5% hard")
FLIGHTS_ROWS = {"quick": 20_000, "full": 100_000}


def load_dataset(name, flights_rows):
    """``(X, y, info)`` with ``y`` encoded ``0 .. K - 1`` (binary: 1 is the minority)."""
    if name in SYNTHETIC:
        spec = SYNTHETIC[name]
        data = make_imbalanced_classification(SYNTH_N, 20, random_state=SYNTH_SEED, **spec)
        X, y = data.X, data.y
        info = {"name": name, "n": len(y), "n_features": X.shape[1], "n_classes": 2,
                "positive_rate": float(np.mean(y == 1)),
                "source": f"skcfe.datasets.make_imbalanced_classification({SYNTH_N}, 20, "
                          f"positive_rate={spec['positive_rate']}, class_sep={spec['class_sep']}, "
                          f"random_state={SYNTH_SEED})"}
    elif name == "flights":
        X, y, info = load_real("flights", max_rows=flights_rows, random_state=0)
    else:
        X, y, info = load_real(name)
    return X, LabelEncoder().fit_transform(y), info


def splits(y, seeds):
    for seed in seeds:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=TEST_SIZE, random_state=seed)
        train, test = next(sss.split(np.zeros(len(y)), y))
        yield seed, train, test


def base_layer(memory, X, y, seed, train, test):
    """The split's base matrices, from joblib.Memory's cache when there."""
    return memory.cache(C.base_matrices)(default_estimators(seed), X[train], y[train], X[test],
                                         y[test], cv=CV)


# -- one split, every model ----------------------------------------------------------


def fit_skcfe(base, params, seed):
    start = time.perf_counter()
    model = CFEnsembleClassifier("precomputed", random_state=seed, **params)
    model.fit(base.R_train, base.y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = model.predict_proba(base.R_test)
    return model, proba, fit_s, time.perf_counter() - start


def evaluate_split(base, seed, models):
    """One row per model with its scores; predictions and fitted combiners aside."""
    rows, proba, fitted_models = [], {}, {}
    bf, bp = base.base_fit_s, base.base_predict_s

    def record(label, p, fit_s, predict_s, **extra):
        rows.append({"model": label, **C.scores(base.y_test, p), "fit_s": fit_s,
                     "predict_s": predict_s, **extra})
        proba[label] = p

    p, fs, ps, lr = C.stacking_proba(base.R_train, base.y_train, base.R_test)
    record("stacking (LR)", p, bf + fs, bp + ps)
    fitted_models["stacking (LR)"] = lr
    start = time.perf_counter()
    p = C.voting_proba(base, base.R_test)
    record("soft voting", p, bf, bp + time.perf_counter() - start)
    # Best single estimator, chosen by its cross-validated PR-AUC on the
    # training split (its out-of-fold column), then its refit on the test rows;
    # and, as a ceiling, the one best on the test rows.
    for label, y, R, fit_s in (
        ("best single (inner CV)", base.y_train, base.R_train, sum(base.oof_s.values())),
        ("best single (oracle: best on test)", base.y_test, base.R_test, 0.0),
    ):
        j = int(np.argmax([C.pr_auc(y, base.estimator_proba(R, j))
                           for j in range(base.n_estimators)]))
        name = base.names[j]
        record(label, base.estimator_proba(base.R_test, j), fit_s + base.refit_s[name],
               base.predict_s[name], chosen=name)
    p, fs, ps, lr = C.logit_stacking_proba(base.R_train, base.y_train, base.R_test)
    record("LR on logit(R)", p, bf + fs, bp + ps)
    fitted_models["LR on logit(R)"] = lr

    defaults = CFEnsembleClassifier().get_params()
    fitted = {}  # a configuration listed twice (a grid cell that is the default) fits once
    for label, params in models.items():
        key = repr(sorted({**defaults, **params}.items()))
        try:
            if key not in fitted:
                fitted[key] = fit_skcfe(base, params, seed)
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            # A failing configuration is reported in the table, not fatal.
            rows.append({"model": label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        model, p, fs, ps = fitted[key]
        record(label, p, bf + fs, bp + ps, n_iter=int(model.n_iter_))
        fitted_models[label] = model
    return rows, proba, fitted_models


# -- the benchmark -------------------------------------------------------------------


def run_quality(args, models=None, title="skcfe quality benchmark", suffix=None):
    """The benchmark; ``models`` (label -> skcfe parameters) overrides the skcfe columns."""
    if suffix is None:
        suffix = "_quick" if args.quick else ""
    datasets = args.datasets or (QUICK_DATASETS if args.quick else ALL_DATASETS)
    seeds = args.seeds or list(range(3 if args.quick else 5))
    flights_rows = args.flights_rows or FLIGHTS_ROWS["quick" if args.quick else "full"]
    if models is None:
        use_torch = args.torch and importlib.util.find_spec("torch") is not None
        if args.torch and not use_torch:
            log("torch is not installed: torch columns skipped")
        models = skcfe_models(torch=use_torch)
    memory = Memory(None if args.no_cache else C.cache_dir() / "quality", verbose=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "title": title,
        "machine": C.machine_info(),
        "settings": {"seeds": seeds, "test_size": TEST_SIZE, "cv": CV,
                     "flights_rows": flights_rows if "flights" in datasets else None,
                     "ece_bins": C.ECE_BINS, "logit_eps": C.LOGIT_EPS,
                     "skcfe_package_defaults": package_defaults(), "skcfe_models": models},
        "datasets": {},
    }
    runs, curves, reliability, weights = [], {}, {}, {}
    focal = next((m for m in models if "gamma=2 cw=1" in m), None)
    for name in datasets:
        X, y, info = load_dataset(name, flights_rows)
        payload["datasets"][name] = info
        log(f"{name}: {info['n']} rows, {info['n_features']} features, "
            f"{info['n_classes']} classes, positive rate {info['positive_rate']}")
        for seed, train, test in splits(y, seeds):
            start = time.perf_counter()
            base = base_layer(memory, X, y, seed, train, test)
            t_base = time.perf_counter() - start
            rows, proba, fitted = evaluate_split(base, seed, models)
            runs += [{"dataset": name, "seed": seed, **row} for row in rows]
            pr = {row["model"]: row.get("pr_auc", np.nan) for row in rows}
            log(f"  seed {seed}: base layer {t_base:.1f}s, PR-AUC stacking "
                f"{pr['stacking (LR)']:.4f}, skcfe default {pr.get('skcfe default', np.nan):.4f}")
            if seed != seeds[0]:
                continue
            shown = ["stacking (LR)", "soft voting", "best single (inner CV)",
                     "LR on logit(R)", "skcfe default"]
            curves[name] = {m: (base.y_test, proba[m]) for m in shown if m in proba}
            if focal in fitted:
                raw = fitted[focal].set_params(posterior_correction=False)
                reliability[name] = {"stacking (LR)": (base.y_test, proba["stacking (LR)"]),
                                     f"{focal}, corrected": (base.y_test, proba[focal]),
                                     f"{focal}, raw": (base.y_test, raw.predict_proba(base.R_test))}
            if base.n_classes == 2 and "skcfe default" in fitted:
                weights[name] = pd.DataFrame(
                    {m: fitted[m].coef_[0] for m in ("stacking (LR)", "LR on logit(R)",
                                                     "skcfe default")}, index=base.names,
                ).rename(columns={"skcfe default": "skcfe default (its CF aggregator)"})
        payload["runs"] = json.loads(pd.DataFrame(runs).to_json(orient="records",
                                                                double_precision=6))
        (out / f"quality{suffix}.json").write_text(json.dumps(payload))
    report = quality_markdown(payload)
    (out / f"quality{suffix}.md").write_text(report)
    plot_pr_curves(curves, out / f"pr_curves{suffix}.png")
    plot_reliability(reliability, out / f"reliability{suffix}.png")
    plot_weights(weights, out / f"weights{suffix}.png")
    print(report)
    log(f"wrote {out}/quality{suffix}.md, .json, pr_curves{suffix}.png, "
        f"reliability{suffix}.png, weights{suffix}.png")
    return payload


# -- the report ----------------------------------------------------------------------


def quality_markdown(payload):
    s = payload["settings"]
    frame = pd.DataFrame(payload["runs"])
    for column in (*METRICS, "chosen"):
        if column not in frame:
            frame[column] = np.nan
    names, models = list(payload["datasets"]), list(dict.fromkeys(frame["model"]))
    flights = (f"; flights subsampled to {s['flights_rows']} rows" if s.get("flights_rows")
               else "")
    lines = [
        f"# {payload['title']}",
        "",
        f"Measured {C.machine_line(payload['machine'])}.",
        "",
        f"Seeds {s['seeds']} (stratified shuffled splits, {int(s['test_size'] * 100)}% test; "
        f"base estimators `default_estimators(seed)`, cv={s['cv']}){flights}. Cells: median "
        "over seeds (IQR in parentheses). PR-AUC is average precision (digits: macro "
        f"one-vs-rest over 10 classes); ECE has {s['ece_bins']} equal-width bins on P(y=1) "
        "(digits: top label). Fit and predict seconds include the base estimators' work "
        "(shared once per split). skcfe is `CFEnsembleClassifier('precomputed')` on the "
        f"split's out-of-fold matrix; its package defaults: `{s['skcfe_package_defaults']}`.",
        "",
        "## PR-AUC, all data sets",
        "",
        C.median_iqr(frame, ["model", "dataset"], "pr_auc", 3).unstack("dataset")
        .reindex(index=models, columns=names).to_markdown(),
        "",
        "## Per data set",
        "",
    ]
    for name, d in frame.groupby("dataset", sort=False):
        info = payload["datasets"][name]
        rate = info.get("positive_rate")
        chosen = d.groupby("model", sort=False)["chosen"].agg(
            lambda c: f" [{', '.join(sorted(set(c.dropna())))}]" if c.notna().any() else "")
        table = pd.DataFrame({label: C.median_iqr(d, "model", m, digits)
                              for m, (label, digits, _) in METRICS.items()})
        table.index = table.index + chosen.reindex(table.index)
        lines += [f"### {name}: {info['n']} rows, {info['n_features']} features, "
                  + (f"{info['n_classes']} classes" if rate is None else f"{rate:.1%} positive"),
                  "", table.to_markdown(), ""]
    lines += [
        "## Paired differences (same split, same base models)",
        "",
        "Median over seeds of skcfe minus the rival on the same split; in brackets the "
        "seeds where skcfe is at least as good (PR-AUC: higher; Brier, ECE: lower).",
        "",
        paired_table(frame, names).to_markdown(),
        "",
        "## Where skcfe does not win (medians)",
        "",
        *verdicts(frame, names),
        "",
    ]
    return "\n".join(lines)


def paired_table(frame, names, candidate="skcfe default"):
    """Per-seed differences between skcfe and the rivals: median and wins."""
    wide = frame.set_index(["dataset", "seed", "model"])[["pr_auc", "brier", "ece"]]
    wide = wide.unstack("model")
    table = {}
    for metric, rival in [("pr_auc", "stacking (LR)"), ("pr_auc", "best single (inner CV)"),
                          ("pr_auc", "LR on logit(R)"), ("brier", "stacking (LR)"),
                          ("ece", "stacking (LR)")]:
        label, _, higher = METRICS[metric]
        diff = wide[metric][candidate] - wide[metric][rival]
        good = diff >= 0 if higher else diff <= 0
        table[f"{label} vs {rival}"] = [
            f"{diff[name].median():+.4f} [{int(good[name].sum())}/{diff[name].count()}]"
            for name in names]
    return pd.DataFrame(table, index=pd.Index(names, name="data set"))


def verdicts(frame, names, candidate="skcfe default"):
    """Plain statements of every data set where skcfe loses on the median."""
    med = frame.groupby(["dataset", "model"])[["pr_auc", "brier", "ece"]].median()
    out = []
    for name in names:
        ours, problems = med.loc[(name, candidate)], []
        for rival in ("stacking (LR)", "best single (inner CV)"):
            theirs = med.loc[(name, rival), "pr_auc"]
            if ours["pr_auc"] < theirs:
                problems.append(f"PR-AUC {ours['pr_auc']:.4f} < {rival} {theirs:.4f}")
        for metric in ("brier", "ece"):
            theirs = med.loc[(name, "stacking (LR)"), metric]
            if ours[metric] > theirs:
                problems.append(f"{METRICS[metric][0]} {ours[metric]:.4f} > stacking {theirs:.4f}")
        if problems:
            out.append(f"- **{candidate}**, {name}: " + "; ".join(problems) + ".")
    return out or ["- none: skcfe matches or beats stacking and the best single model everywhere."]


# -- plots: scikit-learn's Displays, one panel per data set --------------------------


def _panels(n, title):
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 5.5 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    return fig, axes.ravel()


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_pr_curves(curves, path):
    """curves: {dataset: {model: (y, proba)}}; K > 2 classes: micro-averaged over classes."""
    if not curves:
        return
    fig, axes = _panels(len(curves), "Precision-recall curves (held-out split, first seed)")
    for ax, (dataset, models) in zip(axes, curves.items()):
        multiclass = next(iter(models.values()))[1].shape[1] > 2
        for k, (label, (y, proba)) in enumerate(models.items()):
            if multiclass:  # every (row, class) pair once: the micro-average
                y = label_binarize(y, classes=np.arange(proba.shape[1])).ravel()
                proba = proba.ravel()
            else:
                proba = proba[:, 1]
            display = PrecisionRecallDisplay.from_predictions(
                y, proba, ax=ax, plot_chance_level=k == len(models) - 1,
                chance_level_kw={"color": "grey", "ls": ":"})
            display.line_.set_label(f"{label} (AP {display.average_precision:.3f})")
        ax.set(title=dataset + (" (micro-average over classes)" if multiclass else ""),
               xlabel="recall", ylabel="precision", ylim=(0, 1.02), aspect="auto")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    _save(fig, path)


def plot_reliability(diagrams, path):
    """diagrams: {dataset: {label: (y, proba)}}; binary: P(y=1), K classes: top label."""
    if not diagrams:
        return
    fig, axes = _panels(len(diagrams), "Reliability: focal loss + class weights with and "
                        f"without the posterior correction (first seed, {C.ECE_BINS} bins)")
    for ax, (dataset, models) in zip(axes, diagrams.items()):
        for label, (y, proba) in models.items():
            hit, confidence = C.calibration_target(y, proba)
            ece = C.expected_calibration_error(y, proba)
            CalibrationDisplay.from_predictions(hit, confidence, n_bins=C.ECE_BINS, ax=ax,
                                                name=f"{label} (ECE {ece:.3f})")
        binary = next(iter(models.values()))[1].shape[1] == 2
        ax.set(title=dataset, xlabel="predicted P(y=1)" if binary else "top-label confidence",
               ylabel="observed frequency of y=1" if binary else "top-label accuracy")
        ax.legend(fontsize=8, loc="upper left")
    _save(fig, path)


def plot_weights(weights, path):
    """weights: {dataset: DataFrame (base estimator x model)} as grouped bars."""
    if not weights:
        return
    fig, axes = _panels(len(weights), "Aggregator weights per base estimator (first seed): "
                        "stacking on probabilities; LR on logit(R) and skcfe on logits")
    for ax, (dataset, frame) in zip(axes, weights.items()):
        frame.plot.bar(ax=ax, rot=30)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set(title=dataset, xlabel="base estimator", ylabel="weight")
        ax.legend(fontsize=8)
    _save(fig, path)


# -- --check: the shortcuts on cached matrices equal the real thing -----------------


def run_check(args):
    from sklearn.ensemble import StackingClassifier

    report = {}
    for name in ("breast_cancer", "digits"):
        X, y, _ = load_dataset(name, None)
        seed, train, test = next(splits(y, [0]))
        estimators = default_estimators(seed)
        base = C.base_matrices(estimators, X[train], y[train], X[test], y[test], cv=CV)
        stacking = StackingClassifier(estimators, cv=CV).fit(X[train], y[train])
        skcfe = CFEnsembleClassifier(estimators, random_state=seed).fit(X[train], y[train])
        report[name] = {
            "stacking: max |LR on R_train - StackingClassifier|": float(np.abs(
                C.stacking_proba(base.R_train, base.y_train, base.R_test)[0]
                - stacking.predict_proba(X[test])).max()),
            "skcfe: max |precomputed R_train - CFEnsembleClassifier(estimators)|": float(np.abs(
                fit_skcfe(base, {}, seed)[1] - skcfe.predict_proba(X[test])).max()),
        }
        for key, value in report[name].items():
            log(f"{name}: {key} = {value:.3g}")
    Path(args.out, "equivalence.json").write_text(
        json.dumps({"machine": C.machine_info(), **report}, indent=1))
    worst = max(v for r in report.values() for v in r.values())
    if worst > 1e-8:
        raise SystemExit(f"the shortcuts differ by {worst:.3g} > 1e-8")
    log("the shortcuts agree to 1e-8")


# -- --tune: choose defaults by cross-validation, never on test splits --------------

# Tuning family 1: feature data sets from the generator, drawn with seeds and
# settings that the benchmark's synthetic problems do not use.
TUNE_FEATURE_PROBLEMS = [
    {"positive_rate": rate, "class_sep": sep, "random_state": 1000 + k}
    for k, (rate, sep) in enumerate(itertools.product((0.02, 0.05, 0.1, 0.2), (0.75, 1.5, 2.5)))
]
# Tuning family 2: probability matrices drawn directly (10 classifiers).
TUNE_MATRIX_PROBLEMS = [
    {"positive_rate": rate, "quality": quality, "diversity": div, "random_state": 2000 + k}
    for k, (rate, quality, div) in enumerate(
        itertools.product((0.05, 0.1, 0.2), (0.5, 0.7), (0.2, 0.8)))
]
TUNE_REAL = ("satimage", "default", "breast_cancer", "flights")
# A candidate replaces the incumbent only if its paired PR-AUC gain over the
# tuning problems exceeds this many standard errors: the winner of a grid is
# otherwise often noise, and every change of a default needs evidence.
SWITCH_SE = 2.0


def tuning_problems(args, memory):
    """(group, name, R_train, y_train, R_val, y_val, n_classes) of every tuning problem."""
    problems = []
    flights_rows = args.flights_rows or FLIGHTS_ROWS["quick" if args.quick else "full"]
    seeds = args.seeds or [0, 1, 2]
    for name in [d for d in (args.datasets or TUNE_REAL) if d in REAL]:
        X, y, _ = load_dataset(name, flights_rows)
        for seed, train, test in splits(y, seeds):
            base = base_layer(memory, X, y, seed, train, test)
            # Inner CV on the training split's out-of-fold matrix: the test rows
            # of the split are never looked at.
            inner = StratifiedKFold(3, shuffle=True, random_state=seed)
            for fold, (a, b) in enumerate(inner.split(base.R_train, base.y_train)):
                problems.append(("real", f"{name} s{seed} f{fold}", base.R_train[a],
                                 base.y_train[a], base.R_train[b], base.y_train[b],
                                 base.n_classes))
        log(f"tuning data: {name} ({len(seeds)} training splits x 3 inner folds)")
    if args.tune_real_only:
        return problems
    for spec in TUNE_FEATURE_PROBLEMS:
        data = make_imbalanced_classification(6000, 20, **spec)
        seed, train, test = next(splits(data.y, [spec["random_state"]]))
        base = base_layer(memory, data.X, data.y, seed, train, test)
        problems.append(("synthetic features", f"tune_rate{spec['positive_rate']}_sep"
                         f"{spec['class_sep']}", base.R_train, base.y_train, base.R_test,
                         base.y_test, 2))
    for spec in TUNE_MATRIX_PROBLEMS:
        data = make_probability_matrix(4000, 10, **spec)
        seed, train, test = next(splits(data.y, [spec["random_state"]]))
        problems.append(("synthetic matrices", f"matrix_rate{spec['positive_rate']}_q"
                         f"{spec['quality']}_div{spec['diversity']}", data.R[train],
                         data.y[train], data.R[test], data.y[test], 2))
    log(f"tuning data: {len(TUNE_FEATURE_PROBLEMS)} generated feature data sets, "
        f"{len(TUNE_MATRIX_PROBLEMS)} generated probability matrices")
    return problems


def resolve(config, q):
    """Concrete skcfe parameters: latent_dim may be a fraction of the columns ('f0.6')."""
    params = dict(config)
    latent = params.get("latent_dim")
    if isinstance(latent, str) and latent.startswith("f"):
        params["latent_dim"] = max(1, round(float(latent[1:]) * q))
    return params


def score_config(config, problems):
    """Scores of a configuration on every problem (an error where it fails)."""
    out = []
    for _, _, Rt, yt, Rv, yv, _ in problems:
        try:
            model = CFEnsembleClassifier("precomputed", random_state=0,
                                         **resolve(config, Rt.shape[1])).fit(Rt, yt)
            out.append(C.scores(yv, model.predict_proba(Rv)))
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            out.append({"error": str(exc)})
    return out


def aggregate_scores(problems, per_problem, baseline):
    """Mean differences to stacking per group, and over groups (groups weigh equally)."""
    rows = pd.DataFrame([{"group": p[0], "d_pr_auc": s.get("pr_auc", -np.inf) - b["pr_auc"],
                          "d_brier": s.get("brier", np.inf) - b["brier"],
                          "d_ece": s.get("ece", np.nan) - b["ece"],
                          "win": float(s.get("pr_auc", -np.inf) >= b["pr_auc"])}
                         for p, s, b in zip(problems, per_problem, baseline)])
    # A failed fit counts as a PR-AUC loss of 1 and a Brier loss of 1.
    rows["d_pr_auc"] = rows["d_pr_auc"].clip(lower=-1.0)
    rows["d_brier"] = rows["d_brier"].clip(upper=1.0)
    groups = rows.groupby("group", sort=False).mean()
    summary = groups.to_dict("index")
    summary["overall"] = groups[["d_pr_auc", "d_brier", "win"]].mean().to_dict()
    return summary


def paired_gain(a, b, weights):
    """Weighted mean of ``a - b`` over problems and its standard error."""
    diff = np.asarray(a) - np.asarray(b)
    mean = float(np.dot(weights, diff))
    return mean, float(np.sqrt(np.sum(weights**2 * (diff - mean) ** 2)))


def run_tune(args):
    memory = Memory(None if args.no_cache else C.cache_dir() / "quality", verbose=0)
    problems = tuning_problems(args, memory)
    # Every group counts equally, and every problem within its group.
    groups = pd.Series([p[0] for p in problems])
    weights = (1.0 / (groups.nunique() * groups.map(groups.value_counts()))).to_numpy()
    log(f"{len(problems)} tuning problems")
    baseline = [C.scores(yv, C.stacking_proba(Rt, yt, Rv)[0])
                for _, _, Rt, yt, Rv, yv, _ in problems]
    tried, decisions = {}, []

    def evaluate(config):
        key = tuple(sorted(config.items()))
        if key not in tried:
            start = time.perf_counter()
            per_problem = score_config(config, problems)
            summ = aggregate_scores(problems, per_problem, baseline)
            tried[key] = {"config": config, "summary": summ,
                          "pr_auc": [s.get("pr_auc", 0.0) for s in per_problem]}
            log(f"  {config}: dPR-AUC {summ['overall']['d_pr_auc']:+.4f} "
                f"(real {summ.get('real', {}).get('d_pr_auc', np.nan):+.4f}), "
                f"win {summ['overall']['win']:.2f}, dBrier {summ['overall']['d_brier']:+.5f} "
                f"[{time.perf_counter() - start:.0f}s]")
        return tried[key]

    def stage(name, incumbent, candidates):
        inc = evaluate(incumbent)
        top = max((evaluate(c) for c in candidates),
                  key=lambda r: r["summary"]["overall"]["d_pr_auc"])
        gain, se = paired_gain(top["pr_auc"], inc["pr_auc"], weights)
        switch = gain > SWITCH_SE * se and gain > 0
        chosen = dict(top["config"] if switch else incumbent)
        reverted = []
        if switch:
            # Keep only the changes that matter: revert each changed parameter
            # whose revert costs no more than SWITCH_SE standard errors.
            for key in [k for k in chosen if chosen[k] != incumbent.get(k)]:
                candidate = {**chosen, key: incumbent[key]}
                loss, loss_se = paired_gain(evaluate(chosen)["pr_auc"],
                                            evaluate(candidate)["pr_auc"], weights)
                if loss <= SWITCH_SE * loss_se:
                    chosen = candidate
                    reverted.append(f"{key} (revert costs {loss:+.4f}, SE {loss_se:.4f})")
        decisions.append({"stage": name, "incumbent": incumbent, "best": top["config"],
                          "gain": gain, "se": se, "switched": switch, "reverted": reverted,
                          "chosen": chosen})
        log(f"{name}: best {top['config']} gain {gain:+.4f} (SE {se:.4f}) -> "
            f"{'switch' if switch else 'keep incumbent'}"
            + (f"; reverted {', '.join(reverted)}" if reverted else ""))
        return chosen

    defaults = package_defaults()
    # latent_dim None is one factor per column of R; 'fX' a fraction X of the columns.
    best = stage("stage 1 (latent_dim x lambda_reg)", dict(defaults),
                 [{**defaults, "latent_dim": d, "lambda_reg": lam}
                  for d in (None, "f0.4", "f0.6", "f0.8", 4, 8)
                  for lam in (1e-4, 1e-3, 1e-2, 1e-1)])
    best = stage("stage 2 (confidence x aggregator_input)", best,
                 [{**best, "confidence": conf, "aggregator_input": inp}
                  for conf in ("uniform", "certainty", "label_aware", "calibration", "agreement")
                  for inp in ("logit", "proba")])
    best = stage("stage 3 (rho x aggregator_alpha)", best,
                 [{**best, "rho": rho, "aggregator_alpha": alpha}
                  for rho in (0.1, 0.5, 0.9) for alpha in (0.1, 1.0, 10.0, 100.0)])
    best = stage("stage 4 (latent_dim x lambda_reg again, class weights)", best,
                 [{**best, "latent_dim": d, "lambda_reg": lam}
                  for d in ("f0.6", "f0.8", None, 8) for lam in (1e-4, 1e-3, 1e-2)]
                 + [{**best, "use_class_weights": cw} for cw in (False, True)])
    log(f"chosen: {best}")
    ranked = sorted(tried.values(), key=lambda r: -r["summary"]["overall"]["d_pr_auc"])
    payload = {"machine": C.machine_info(), "n_problems": len(problems),
               "problems": [(g, n) for g, n, *_ in problems], "chosen": best,
               "package_defaults": defaults, "decisions": decisions, "ranked": ranked,
               "stacking_pr_auc": [b["pr_auc"] for b in baseline]}
    if not args.tune_real_only:
        payload["multiclass_check"] = multiclass_check([defaults, best], memory)
    Path(args.out, "tuning.json").write_text(json.dumps(payload, default=str))
    (Path(args.out) / "tuning.md").write_text(tuning_markdown(payload))
    print(tuning_markdown(payload))
    return payload


def multiclass_check(configs, memory, seeds=(0, 1)):
    """The package defaults and the chosen config on digits (10 classes), inner CV only."""
    X, y, _ = load_dataset("digits", None)
    problems = []
    for seed, train, test in splits(y, seeds):
        base = base_layer(memory, X, y, seed, train, test)
        inner = StratifiedKFold(3, shuffle=True, random_state=seed)
        for a, b in inner.split(base.R_train, base.y_train):
            problems.append(("digits", "", base.R_train[a], base.y_train[a],
                             base.R_train[b], base.y_train[b], base.n_classes))
    out = {"stacking (LR)": [C.scores(yv, C.stacking_proba(Rt, yt, Rv)[0])
                             for _, _, Rt, yt, Rv, yv, _ in problems]}
    for config in configs:
        out[", ".join(f"{k}={v}" for k, v in config.items())] = score_config(config, problems)
    return {label: pd.DataFrame(scores)[["pr_auc", "brier", "ece", "log_loss"]].mean().to_dict()
            for label, scores in out.items()}


def tuning_markdown(payload, top=12):
    groups = [g for g in ("real", "synthetic features", "synthetic matrices")
              if g in payload["ranked"][0]["summary"]]
    marks = {tuple(sorted(payload["package_defaults"].items())): " **(package default)**",
             tuple(sorted(payload["chosen"].items())): " **(chosen)**"}
    shown = payload["ranked"][:top] + [r for r in payload["ranked"][top:]
                                       if tuple(sorted(r["config"].items())) in marks]
    configs = pd.DataFrame([
        {"config": ", ".join(f"{k}={v}" for k, v in r["config"].items())
         + marks.get(tuple(sorted(r["config"].items())), ""),
         "mean dPR-AUC": r["summary"]["overall"]["d_pr_auc"],
         **{f"dPR-AUC {g}": r["summary"][g]["d_pr_auc"] for g in groups},
         "share >= stacking": r["summary"]["overall"]["win"],
         "mean dBrier": r["summary"]["overall"]["d_brier"]} for r in shown])
    decisions = pd.DataFrame([
        {"stage": d["stage"],
         "best candidate (changes)": ", ".join(f"{k}={v}" for k, v in d["best"].items()
                                               if d["incumbent"].get(k) != v) or "(incumbent)",
         "paired gain": f"{d['gain']:+.4f}", "SE": f"{d['se']:.4f}",
         "switched": "yes" if d["switched"] else "no",
         "changes reverted as noise": "; ".join(d["reverted"]) or "-"}
        for d in payload["decisions"]])
    lines = [
        "# skcfe default tuning (cross-validation, never the test splits)",
        "",
        f"Measured {C.machine_line(payload['machine'])}. {payload['n_problems']} problems; "
        "dPR-AUC is skcfe minus StackingClassifier (LR) on the same rows, averaged within "
        "each group, then over groups. latent_dim 'fX' is a fraction X of the matrix's "
        "columns; None (skcfe's default) is as many factors as columns.",
        "",
        f"Chosen: `{payload['chosen']}`",
        "",
        "Stage decisions (a candidate replaces the incumbent only when its paired gain "
        f"exceeds {SWITCH_SE:g} standard errors):",
        "",
        decisions.to_markdown(index=False, disable_numparse=True),
        "",
        f"Top {top} of {len(payload['ranked'])} configurations tried:",
        "",
        configs.to_markdown(index=False, floatfmt=("", *["+.4f"] * (1 + len(groups)), ".2f",
                                                   "+.5f")),
        "",
    ]
    if payload.get("multiclass_check"):
        lines += ["Multiclass check (digits, 10 classes; inner 3-fold CV of 2 training splits):",
                  "", pd.DataFrame(payload["multiclass_check"]).T.rename_axis("config")
                  .to_markdown(floatfmt=".4f"), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 seeds, 5 data sets, flights 20k rows")
    parser.add_argument("--datasets", nargs="+", choices=ALL_DATASETS, metavar="NAME",
                        help=f"data sets (default: all): {', '.join(ALL_DATASETS)}")
    parser.add_argument("--seeds", nargs="+", type=int,
                        help="split seeds (default 0..4; quick 0..2)")
    parser.add_argument("--flights-rows", type=int,
                        help=f"flights subsample (default {FLIGHTS_ROWS['full']}, quick "
                             f"{FLIGHTS_ROWS['quick']})")
    parser.add_argument("--torch", action="store_true", help="add skcfe backend='torch' columns")
    parser.add_argument("--out", default=str(HERE / "results"), help="output folder")
    parser.add_argument("--no-cache", action="store_true",
                        help="fit the base layer afresh (default: joblib.Memory cache in "
                             "~/.cache/skcfe-benchmarks/quality)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--tune", action="store_true", help="choose defaults by CV (no test splits)")
    mode.add_argument("--check", action="store_true",
                      help="verify the shortcuts against StackingClassifier and skcfe")
    mode.add_argument("--report", metavar="JSON",
                      help="rewrite the markdown report of an earlier run's quality JSON")
    parser.add_argument("--tune-real-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        if args.check:
            return run_check(args)
        if args.report:
            report = quality_markdown(json.loads(Path(args.report).read_text()))
            Path(args.report).with_suffix(".md").write_text(report)
            print(report)
            return report
        if args.tune:
            return run_tune(args)
        return run_quality(args)


if __name__ == "__main__":
    main()
