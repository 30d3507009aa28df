"""Quality benchmark: skcfe against the stacking alternatives on identical splits.

Run (full, every data set, 5 seeds)::

    python benchmarks/bench_quality.py

Quick (3 seeds, fewer data sets, flights subsampled to 20,000 rows)::

    python benchmarks/bench_quality.py --quick

Other modes: ``--tune`` chooses skcfe's defaults by cross-validation on the
training splits and on a synthetic family (never on the test splits);
``--check`` verifies that the cached shortcuts equal scikit-learn's
StackingClassifier and skcfe's own fit.

Every model sees the same repeated stratified shuffled splits (30% test) and
the same base estimators (``skcfe.default_estimators(seed)``). The base
estimators' work is done once per split (see ``_common.py``) and shared by all
combiners; reported fit and predict seconds include it.
"""

import argparse
import importlib
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
from sklearn.preprocessing import LabelEncoder
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from datasets import load as load_real

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe.datasets import make_imbalanced_classification, make_probability_matrix

HERE = Path(__file__).resolve().parent
TEST_SIZE = 0.3
CV = 5

# ---------------------------------------------------------------------------
# skcfe configurations
# ---------------------------------------------------------------------------

# skcfe's parameters that the tuning searches, with the package's values when
# this file was written (what "skcfe default" ran with is read from the
# package at run time and recorded in the JSON).
TUNED_KEYS = ("latent_dim", "lambda_reg", "rho", "confidence", "aggregator_alpha",
              "aggregator_input", "use_class_weights")

# Chosen by `--tune` (cross-validation on training splits and the synthetic
# tuning family; see benchmarks/README.md and results/tuning.md). skcfe's
# defaults now match it except use_class_weights, which the tuning measured
# +0.0020 (SE 0.0010) PR-AUC better as False; "skcfe recommended" passes it
# explicitly. latent_dim None is one latent factor per column of R.
RECOMMENDED = {
    "latent_dim": None,
    "lambda_reg": 1e-3,
    "rho": 0.5,
    "confidence": "certainty",
    "aggregator_alpha": 10.0,
    "aggregator_input": "logit",
    "use_class_weights": False,
}


def package_defaults():
    params = CFEnsembleClassifier().get_params()
    return {key: params[key] for key in TUNED_KEYS if key in params}


def recommended():
    """RECOMMENDED, restricted to the parameters this version of skcfe has."""
    params = CFEnsembleClassifier().get_params()
    return {key: value for key, value in RECOMMENDED.items() if key in params}


def skcfe_models(torch=False):
    """Label -> skcfe parameters of every skcfe column of the benchmark."""
    defaults = package_defaults()
    models = {"skcfe default": {}}
    rec = recommended()
    same = all(defaults[k] == v for k, v in rec.items())
    if not same:
        models["skcfe recommended"] = dict(rec)
    base = {} if same else dict(rec)
    for gamma, cw in itertools.product((0.0, 2.0), (False, True)):
        models[f"skcfe{'' if same else ' rec.'} gamma={gamma:g} cw={int(cw)}"] = {
            **base, "focal_gamma": gamma, "use_class_weights": cw,
        }
    if torch:
        models["skcfe torch" + ("" if same else " rec.")] = {**base, "backend": "torch"}
        models["skcfe torch" + ("" if same else " rec.") + " gamma=2 cw=1"] = {
            **base, "backend": "torch", "focal_gamma": 2.0, "use_class_weights": True,
        }
    return models


def torch_available():
    try:
        importlib.import_module("skcfe.backends.torch")
    except (ImportError, OSError, RuntimeError):
        return False
    return True


# ---------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------

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
    y = LabelEncoder().fit_transform(y)
    return X, y, info


def splits(y, seeds):
    for seed in seeds:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=TEST_SIZE, random_state=seed)
        train, test = next(sss.split(np.zeros(len(y)), y))
        yield seed, train, test


def cached_base(name, X, y, seed, train, test, use_cache=True):
    """The split's base matrices, from the on-disk cache when present."""
    key = f"{name.replace(' ', '_').replace('%', 'pct')}-n{len(y)}-seed{seed}-cv{CV}-t{TEST_SIZE}"
    path = C.cache_dir() / f"{key}-sk{C.sklearn.__version__}.npz"
    if use_cache and path.exists():
        base = C.BaseMatrices.from_npz(path)
        if len(base.y_test) == len(test) and np.array_equal(base.y_test, y[test]):
            return base, True
    base = C.base_matrices(default_estimators(seed), X[train], y[train], X[test], y[test], cv=CV)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        base.to_npz(path)
    return base, False


# ---------------------------------------------------------------------------
# one split, every model
# ---------------------------------------------------------------------------


def fit_skcfe(base, params, seed):
    start = time.perf_counter()
    model = C.fit_on_matrix(base.R_train, base.y_train, base.n_classes, random_state=seed,
                            **resolve(params, base.R_train.shape[1]))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = model.predict_proba(base.R_test)
    return model, proba, fit_s, time.perf_counter() - start


def evaluate_split(base, seed, models, keep=False):
    """Scores of every model on one split; with ``keep``, predictions and fitted weights too."""
    y_test = base.y_test
    rows, extras = {}, {"proba": {}, "weights": {}, "uncorrected": {}}
    bf, bp = base.base_fit_s, base.base_predict_s

    def record(label, proba, fit_s, predict_s):
        rows[label] = {**C.scores(y_test, proba), "fit_s": fit_s, "predict_s": predict_s}
        if keep:
            extras["proba"][label] = proba

    proba, fs, ps, lr = C.stacking_proba(base.R_train, base.y_train, base.R_test)
    record("stacking (LR)", proba, bf + fs, bp + ps)
    if keep:
        extras["weights"]["stacking (LR)"] = lr.coef_
    start = time.perf_counter()
    proba = C.voting_proba(base, base.R_test)
    record("soft voting", proba, bf, bp + time.perf_counter() - start)
    # Best single estimator, chosen by its cross-validated PR-AUC on the
    # training split (its out-of-fold column), then its refit on the test rows.
    cv_scores = [C.pr_auc(base.y_train, base.estimator_proba(base.R_train, j))
                 for j in range(base.n_estimators)]
    best = int(np.argmax(cv_scores))
    name = base.names[best]
    record("best single (inner CV)", base.estimator_proba(base.R_test, best),
           sum(base.oof_s.values()) + base.refit_s[name], base.predict_s[name])
    rows["best single (inner CV)"]["chosen"] = name
    test_scores = [C.pr_auc(y_test, base.estimator_proba(base.R_test, j))
                   for j in range(base.n_estimators)]
    oracle = int(np.argmax(test_scores))
    record("best single (oracle: best on test)", base.estimator_proba(base.R_test, oracle),
           base.refit_s[base.names[oracle]], base.predict_s[base.names[oracle]])
    rows["best single (oracle: best on test)"]["chosen"] = base.names[oracle]
    proba, fs, ps, lr = C.logit_stacking_proba(base.R_train, base.y_train, base.R_test)
    record("LR on logit(R)", proba, bf + fs, bp + ps)
    if keep:
        extras["weights"]["LR on logit(R)"] = lr.coef_

    defaults = CFEnsembleClassifier().get_params()
    fitted = {}  # a configuration listed twice (e.g. a grid cell that is the default) fits once
    for label, params in models.items():
        key = repr(sorted({**defaults, **params}.items()))
        try:
            if key not in fitted:
                fitted[key] = fit_skcfe(base, params, seed)
            model, proba, fs, ps = fitted[key]
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            # A failing configuration is reported in the table, not fatal.
            rows[label] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        record(label, proba, bf + fs, bp + ps)
        rows[label]["n_iter"] = int(model.n_iter_)
        if keep:
            extras["weights"][label] = model.coef_
            extras["uncorrected"][label] = model.set_params(
                posterior_correction=False).predict_proba(base.R_test)
    return rows, extras


# ---------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------


def run_quality(args, log, models=None, title="skcfe quality benchmark", suffix=None):
    """The benchmark; ``models`` (label -> skcfe parameters) overrides the skcfe columns."""
    if suffix is None:
        suffix = "_quick" if args.quick else ""
    info_machine = C.machine_info()
    datasets = args.datasets or (QUICK_DATASETS if args.quick else ALL_DATASETS)
    seeds = args.seeds or (list(range(3)) if args.quick else list(range(5)))
    flights_rows = args.flights_rows or FLIGHTS_ROWS["quick" if args.quick else "full"]
    if models is None:
        use_torch = args.torch and torch_available()
        if args.torch and not use_torch:
            log("skcfe.backends.torch is not importable: torch columns skipped")
        models = skcfe_models(torch=use_torch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "title": title,
        "machine": info_machine,
        "settings": {"seeds": seeds, "test_size": TEST_SIZE, "cv": CV,
                     "flights_rows": flights_rows if "flights" in datasets else None,
                     "ece_bins": C.ECE_BINS,
                     "logit_eps": C.LOGIT_EPS, "skcfe_package_defaults": package_defaults(),
                     "skcfe_recommended": recommended(), "skcfe_models": models},
        "datasets": {},
    }
    curves, reliab, weights = {}, {}, {}
    for name in datasets:
        X, y, info = load_dataset(name, flights_rows)
        log(f"{name}: {info['n']} rows, {info['n_features']} features, "
            f"{info['n_classes']} classes, positive rate {info['positive_rate']}")
        per_seed = {}
        for seed, train, test in splits(y, seeds):
            start = time.perf_counter()
            base, hit = cached_base(name, X, y, seed, train, test,
                                    use_cache=not getattr(args, "no_cache", False))
            t_base = time.perf_counter() - start
            keep = seed == seeds[0]
            rows, extras = evaluate_split(base, seed, models, keep=keep)
            per_seed[seed] = rows
            rec = "skcfe recommended" if "skcfe recommended" in models else "skcfe default"
            log(f"  seed {seed}: base models {'cached' if hit else f'{t_base:.1f}s'}, "
                f"PR-AUC stacking {rows['stacking (LR)']['pr_auc']:.4f}, "
                + ", ".join(f"{name} {rows[name].get('pr_auc', float('nan')):.4f}"
                            for name in dict.fromkeys(["skcfe default", rec])))
            if keep:
                shown = ["stacking (LR)", "soft voting", "best single (inner CV)",
                         "LR on logit(R)", "skcfe default", rec]
                curves[name] = {m: (base.y_test, extras["proba"][m]) for m in dict.fromkeys(shown)
                                if m in extras["proba"]}
                focal = next((m for m in models if "gamma=2 cw=1" in m), None)
                if focal in extras["proba"]:
                    reliab[name] = {
                        "stacking (LR)": (base.y_test, extras["proba"]["stacking (LR)"]),
                        f"{focal}, corrected": (base.y_test, extras["proba"][focal]),
                        f"{focal}, raw": (base.y_test, extras["uncorrected"][focal]),
                    }
                if base.n_classes == 2 and rec in extras["weights"]:
                    weights[name] = {
                        label: (base.names, extras["weights"][label][0])
                        for label in ("stacking (LR)", "LR on logit(R)", rec)
                    }
        results["datasets"][name] = {"info": info, "per_seed": per_seed,
                                     "summary": summarize_dataset(per_seed)}
        C.write_json(out / f"quality{suffix}.json", results, compact=True)
    report = quality_markdown(results)
    (out / f"quality{suffix}.md").write_text(report)
    C.plot_pr_curves(curves, out / f"pr_curves{suffix}.png")
    C.plot_reliability(reliab, out / f"reliability{suffix}.png",
                       title="Reliability: focal loss + class weights with and without the "
                             "posterior correction (seed 0, 15 bins)")
    C.plot_weights(weights, out / f"weights{suffix}.png",
                   title="Aggregator weights per base estimator (seed 0): stacking on "
                         "probabilities; LR on logit(R) and skcfe (aggregator_input='logit') "
                         "on logits")
    print(report)
    log(f"wrote {out}/quality{suffix}.md, .json, pr_curves{suffix}.png, "
        f"reliability{suffix}.png, weights{suffix}.png")
    return results


def summarize_dataset(per_seed):
    labels = list(next(iter(per_seed.values())))
    summary = {}
    for label in labels:
        runs = [per_seed[s][label] for s in per_seed if "error" not in per_seed[s][label]]
        summary[label] = {m: C.summarize([r[m] for r in runs]) for m in C.METRICS}
        errors = [per_seed[s][label]["error"] for s in per_seed if "error" in per_seed[s][label]]
        if errors:
            summary[label]["errors"] = errors
        chosen = [r.get("chosen") for r in runs if r.get("chosen")]
        if chosen:
            summary[label]["chosen"] = sorted(set(chosen))
    return summary


def quality_markdown(results):
    m = results["machine"]
    s = results["settings"]
    flights = (f"; flights subsampled to {s['flights_rows']} rows" if s.get("flights_rows")
               else "")
    lines = [
        f"# {results.get('title', 'skcfe quality benchmark')}",
        "",
        f"Measured {C.machine_line(m)}.",
        "",
        (
            f"Seeds {s['seeds']} (stratified shuffled splits, {int(s['test_size'] * 100)}% test; "
            f"base estimators `default_estimators(seed)`, cv={s['cv']}){flights}. Cells: median "
            "over seeds (IQR in parentheses). PR-AUC is average precision (digits: macro "
            f"one-vs-rest over 10 classes); ECE has {s['ece_bins']} equal-width bins on P(y=1) "
            "(digits: top label). Fit and predict seconds include the base estimators' work "
            "(shared once per split)."
        ),
        "",
        (
            f"skcfe package defaults at run time: `{s['skcfe_package_defaults']}`; "
            f"recommended (tuned by CV, passed explicitly): `{s['skcfe_recommended']}`."
        ),
        "",
        "## PR-AUC, all data sets",
        "",
    ]
    names = list(results["datasets"])
    labels = list(next(iter(results["datasets"].values()))["summary"])
    header = ["model", *names]
    rows = []
    for label in labels:
        row = [label]
        for name in names:
            summ = results["datasets"][name]["summary"][label]["pr_auc"]
            row.append(C.fmt_summary(summ, 3))
        rows.append(row)
    lines.append(C.markdown_table(header, rows))
    lines += ["", "## Per data set", ""]
    for name in names:
        d = results["datasets"][name]
        info = d["info"]
        rate = info.get("positive_rate")
        lines.append(
            f"### {name}: {info['n']} rows, {info['n_features']} features, "
            + (f"{info['n_classes']} classes" if rate is None else f"{rate:.1%} positive")
        )
        lines.append("")
        rows = []
        for label, summ in d["summary"].items():
            row = [label + (f" [{', '.join(summ['chosen'])}]" if "chosen" in summ else "")]
            for metric in C.METRICS:
                digits = 2 if metric.endswith("_s") else 4
                row.append(C.fmt_summary(summ[metric], digits))
            rows.append(row)
        lines.append(C.markdown_table(["model", *(C.METRIC_LABELS[k] for k in C.METRICS)], rows))
        lines.append("")
    lines += [
        "## Paired differences (same split, same base models)",
        "",
        (
            "Median over seeds of skcfe minus the rival on the same split; in brackets the "
            "seeds where skcfe is at least as good (PR-AUC: higher; Brier, ECE: lower)."
        ),
        "",
        *paired_tables(results),
        "## Where skcfe does not win (medians)",
        "",
        *verdicts(results),
        "",
    ]
    return "\n".join(lines)


def paired_tables(results, candidates=("skcfe default", "skcfe recommended")):
    """Markdown tables of per-seed differences between skcfe and the rivals."""
    comparisons = [("pr_auc", "stacking (LR)"), ("pr_auc", "best single (inner CV)"),
                   ("pr_auc", "LR on logit(R)"), ("brier", "stacking (LR)"),
                   ("ece", "stacking (LR)")]
    out = []
    for cand in candidates:
        rows = []
        for name, d in results["datasets"].items():
            runs = d["per_seed"].values()
            if not all(cand in r and "error" not in r[cand] for r in runs):
                continue
            row = [name]
            for metric, rival in comparisons:
                diff = np.array([r[cand][metric] - r[rival][metric] for r in runs])
                good = diff >= 0 if C.HIGHER_BETTER[metric] else diff <= 0
                row.append(f"{np.median(diff):+.4f} [{int(good.sum())}/{len(diff)}]")
            rows.append(row)
        if rows:
            header = ["data set", *(f"{C.METRIC_LABELS[m]} vs {r}" for m, r in comparisons)]
            out += [f"**{cand}**", "", C.markdown_table(header, rows), ""]
    return out


def verdicts(results, candidates=("skcfe default", "skcfe recommended")):
    """Plain statements of every data set where an skcfe configuration loses."""
    out = []
    for cand in candidates:
        for name, d in results["datasets"].items():
            summ = d["summary"]
            if cand not in summ or summ[cand]["pr_auc"]["n"] == 0:
                continue
            ours = summ[cand]
            problems = []
            for rival in ("stacking (LR)", "best single (inner CV)"):
                if ours["pr_auc"]["median"] < summ[rival]["pr_auc"]["median"]:
                    problems.append(
                        f"PR-AUC {ours['pr_auc']['median']:.4f} < {rival} "
                        f"{summ[rival]['pr_auc']['median']:.4f}")
            for metric in ("brier", "ece"):
                if ours[metric]["median"] > summ["stacking (LR)"][metric]["median"]:
                    problems.append(
                        f"{C.METRIC_LABELS[metric]} {ours[metric]['median']:.4f} > stacking "
                        f"{summ['stacking (LR)'][metric]['median']:.4f}")
            if problems:
                out.append(f"- **{cand}**, {name}: " + "; ".join(problems) + ".")
    return out or ["- none: skcfe matches or beats stacking and the best single model everywhere."]


# ---------------------------------------------------------------------------
# --check: the cached shortcuts equal the real thing
# ---------------------------------------------------------------------------


def run_check(args, log):
    from sklearn.ensemble import StackingClassifier

    report = {}
    for name in ("breast_cancer", "digits"):
        X, y, _ = load_dataset(name, None)
        seed, train, test = next(splits(y, [0]))
        estimators = default_estimators(seed)
        base = C.base_matrices(estimators, X[train], y[train], X[test], y[test], cv=CV,
                               keep_estimators=True)
        ours, _, _, _ = C.stacking_proba(base.R_train, base.y_train, base.R_test)
        theirs = StackingClassifier(estimators, cv=CV).fit(X[train], y[train]).predict_proba(X[test])
        reference = CFEnsembleClassifier(estimators, random_state=seed).fit(X[train], y[train])
        ref_proba = reference.predict_proba(X[test])
        cached = C.CachedCFEnsembleClassifier(estimators, random_state=seed).use_matrix(
            base.R_train, base.estimators).fit(X[train], y[train])
        _, from_matrix, _, _ = fit_skcfe(base, {}, seed)
        report[name] = {
            "stacking: max |cached - StackingClassifier|": float(np.abs(ours - theirs).max()),
            "skcfe: max |cached (real estimators) - CFEnsembleClassifier|":
                float(np.abs(cached.predict_proba(X[test]) - ref_proba).max()),
            "skcfe: max |cached matrix (ColumnProba) - CFEnsembleClassifier|":
                float(np.abs(from_matrix - ref_proba).max()),
        }
        for key, value in report[name].items():
            log(f"{name}: {key} = {value:.3g}")
    C.write_json(Path(args.out) / "equivalence.json", {"machine": C.machine_info(), **report})
    worst = max(v for r in report.values() for v in r.values())
    if worst > 1e-8:
        raise SystemExit(f"cached shortcuts differ by {worst:.3g} > 1e-8")
    log("cached shortcuts agree to 1e-8")


# ---------------------------------------------------------------------------
# --tune: choose defaults by cross-validation, never on test splits
# ---------------------------------------------------------------------------

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


def tuning_problems(args, log):
    """(group, name, R_train, y_train, R_val, y_val, n_classes) of every tuning problem."""
    problems = []
    flights_rows = args.flights_rows or FLIGHTS_ROWS["quick" if args.quick else "full"]
    seeds = args.seeds or [0, 1, 2]
    real = [d for d in (args.datasets or TUNE_REAL) if d in REAL]
    for name in real:
        X, y, _ = load_dataset(name, flights_rows)
        for seed, train, test in splits(y, seeds):
            base, _ = cached_base(name, X, y, seed, train, test, use_cache=not args.no_cache)
            # Inner CV on the training split's out-of-fold matrix: the test rows
            # of the split are never looked at.
            inner = StratifiedKFold(3, shuffle=True, random_state=seed)
            for fold, (a, b) in enumerate(inner.split(base.R_train, base.y_train)):
                problems.append(("real", f"{name} s{seed} f{fold}", base.R_train[a],
                                 base.y_train[a], base.R_train[b], base.y_train[b],
                                 base.n_classes))
        log(f"tuning data: {name} ({len(seeds)} training splits x 3 inner folds)")
    if not args.tune_real_only:
        for spec in TUNE_FEATURE_PROBLEMS:
            data = make_imbalanced_classification(6000, 20, **spec)
            seed, train, test = next(splits(data.y, [spec["random_state"]]))
            label = f"tune_rate{spec['positive_rate']}_sep{spec['class_sep']}"
            base, _ = cached_base(label, data.X, data.y, seed, train, test,
                                  use_cache=not args.no_cache)
            problems.append(("synthetic features", label, base.R_train, base.y_train,
                             base.R_test, base.y_test, 2))
        log(f"tuning data: {len(TUNE_FEATURE_PROBLEMS)} generated feature data sets")
        for spec in TUNE_MATRIX_PROBLEMS:
            data = make_probability_matrix(4000, 10, **spec)
            seed, train, test = next(splits(data.y, [spec["random_state"]]))
            label = (f"matrix_rate{spec['positive_rate']}_q{spec['quality']}"
                     f"_div{spec['diversity']}")
            problems.append(("synthetic matrices", label, data.R[train], data.y[train],
                             data.R[test], data.y[test], 2))
        log(f"tuning data: {len(TUNE_MATRIX_PROBLEMS)} generated probability matrices")
    return problems


# Full rank: skcfe's latent_dim=None where it has it (one factor per column
# of R), else the fraction 1.0 of the columns.
FULL_RANK = None if CFEnsembleClassifier().get_params().get("latent_dim", 0) is None else "f1.0"
# The aggregator's L2 penalty: on the summed-loss scale (1/C of
# LogisticRegression) in skcfe since fc41f25, on the mean loss before.
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0) if FULL_RANK is None else (1e-4, 1e-3, 1e-2, 1e-1)


def resolve(config, q):
    """Concrete skcfe parameters: latent_dim may be a fraction of the columns ('f0.6')."""
    params = dict(config)
    latent = params.get("latent_dim")
    if isinstance(latent, str) and latent.startswith("f"):
        params["latent_dim"] = max(1, round(float(latent[1:]) * q))
    return params


def score_config(config, problems, baseline):
    """Per-problem scores of a configuration (mean over rows of a problem)."""
    out = []
    for group, name, Rt, yt, Rv, yv, k in problems:
        try:
            model = C.fit_on_matrix(Rt, yt, k, random_state=0, **resolve(config, Rt.shape[1]))
            proba = model.predict_proba(Rv)
            s = C.scores(yv, proba)
        except (ValueError, ArithmeticError, RuntimeError) as exc:
            s = {"error": str(exc)}
        out.append((group, name, s))
    return out


def aggregate_scores(per_problem, baseline):
    """Mean PR-AUC gain over stacking, per group and overall (groups weigh equally)."""
    groups = {}
    for (group, name, s), (_, _, b) in zip(per_problem, baseline):
        if "error" in s:
            groups.setdefault(group, []).append({"d_pr_auc": -1.0, "d_brier": 1.0, "win": 0})
            continue
        groups.setdefault(group, []).append({
            "d_pr_auc": s["pr_auc"] - b["pr_auc"], "d_brier": s["brier"] - b["brier"],
            "d_ece": s["ece"] - b["ece"], "win": float(s["pr_auc"] >= b["pr_auc"]),
        })
    summary = {g: {k: float(np.mean([r.get(k, np.nan) for r in rows])) for k in rows[0]}
               for g, rows in groups.items()}
    summary["overall"] = {
        "d_pr_auc": float(np.mean([v["d_pr_auc"] for v in summary.values()])),
        "d_brier": float(np.mean([v["d_brier"] for v in summary.values()])),
        "win": float(np.mean([v["win"] for v in summary.values()])),
    }
    return summary


def problem_weights(problems):
    """Weights that make every group count equally and problems within a group equally."""
    groups = [p[0] for p in problems]
    sizes = {g: groups.count(g) for g in set(groups)}
    return np.array([1.0 / (len(sizes) * sizes[g]) for g in groups])


def paired_gain(a, b, weights):
    """Weighted mean of ``a - b`` over problems and its standard error."""
    diff = np.asarray(a) - np.asarray(b)
    mean = float(np.dot(weights, diff))
    return mean, float(np.sqrt(np.sum(weights**2 * (diff - mean) ** 2)))


# A candidate replaces the incumbent only if its paired PR-AUC gain over the
# tuning problems exceeds this many standard errors: the winner of a grid is
# otherwise often noise, and every change of a default needs evidence.
SWITCH_SE = 2.0


def run_tune(args, log):
    problems = tuning_problems(args, log)
    weights = problem_weights(problems)
    log(f"{len(problems)} tuning problems")
    baseline = []
    for group, name, Rt, yt, Rv, yv, k in problems:
        proba, _, _, _ = C.stacking_proba(Rt, yt, Rv)
        baseline.append((group, name, C.scores(yv, proba)))
    tried = {}

    def evaluate(config):
        key = tuple(sorted(config.items()))
        if key not in tried:
            start = time.perf_counter()
            per_problem = score_config(config, problems, baseline)
            summ = aggregate_scores(per_problem, baseline)
            pr = [s.get("pr_auc", 0.0) for _, _, s in per_problem]
            tried[key] = {"config": config, "summary": summ, "pr_auc": pr}
            log(f"  {config}: dPR-AUC {summ['overall']['d_pr_auc']:+.4f} "
                f"(real {summ.get('real', {}).get('d_pr_auc', float('nan')):+.4f}), "
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

    decisions = []
    defaults = package_defaults()
    best = dict(defaults)
    has_input = "aggregator_input" in defaults
    # Stage 1: rank and ridge, the two that matter most.
    best = stage("stage 1 (latent_dim x lambda_reg)", best,
                 [{**best, "latent_dim": d, "lambda_reg": lam}
                  for d in (FULL_RANK, "f0.4", "f0.6", "f0.8", 4, 8)
                  for lam in (1e-4, 1e-3, 1e-2, 1e-1)])
    # Stage 2: what the aggregator sees and how entries are weighted.
    best = stage("stage 2 (confidence x aggregator_input)", best,
                 [{**best, "confidence": conf, **({"aggregator_input": inp} if has_input else {})}
                  for conf in ("uniform", "certainty", "label_aware", "calibration", "agreement")
                  for inp in (("logit", "proba") if has_input else (None,))])
    # Stage 3: the supervised share and the aggregator's penalty.
    best = stage("stage 3 (rho x aggregator_alpha)", best,
                 [{**best, "rho": rho, "aggregator_alpha": alpha}
                  for rho in (0.1, 0.5, 0.9) for alpha in ALPHA_GRID])
    # Stage 4: rank and ridge again around the best, and the class weights.
    best = stage("stage 4 (latent_dim x lambda_reg again, class weights)", best,
                 [{**best, "latent_dim": d, "lambda_reg": lam}
                  for d in ("f0.6", "f0.8", FULL_RANK, 8) for lam in (1e-4, 1e-3, 1e-2)]
                 + [{**best, "use_class_weights": cw} for cw in (False, True)])
    log(f"chosen: {best}")
    ranked = sorted(tried.values(), key=lambda r: -r["summary"]["overall"]["d_pr_auc"])
    payload = {"machine": C.machine_info(), "n_problems": len(problems),
               "problems": [(g, n) for g, n, *_ in problems], "chosen": best,
               "package_defaults": defaults, "decisions": decisions, "ranked": ranked,
               "stacking_pr_auc": [b["pr_auc"] for _, _, b in baseline]}
    if not args.tune_real_only:
        payload["multiclass_check"] = multiclass_check([defaults, best], args, log)
    C.write_json(Path(args.out) / "tuning.json", payload, compact=True)
    (Path(args.out) / "tuning.md").write_text(tuning_markdown(payload))
    print(tuning_markdown(payload))
    return payload


def multiclass_check(configs, args, log, seeds=(0, 1)):
    """The package defaults and the chosen config on digits (10 classes), inner CV only."""
    X, y, _ = load_dataset("digits", None)
    problems = []
    for seed, train, test in splits(y, seeds):
        base, _ = cached_base("digits", X, y, seed, train, test,
                              use_cache=not getattr(args, "no_cache", False))
        inner = StratifiedKFold(3, shuffle=True, random_state=seed)
        for a, b in inner.split(base.R_train, base.y_train):
            problems.append(("digits", "", base.R_train[a], base.y_train[a],
                             base.R_train[b], base.y_train[b], base.n_classes))
    out = {"stacking (LR)": []}
    for _, _, Rt, yt, Rv, yv, _ in problems:
        out["stacking (LR)"].append(C.scores(yv, C.stacking_proba(Rt, yt, Rv)[0]))
    for config in configs:
        label = ", ".join(f"{k}={v}" for k, v in config.items())
        start = time.perf_counter()
        out[label] = [s for _, _, s in score_config(config, problems, None)]
        log(f"digits check: {label}: PR-AUC "
            f"{np.mean([s.get('pr_auc', np.nan) for s in out[label]]):.4f} "
            f"[{time.perf_counter() - start:.0f}s]")
    return {k: {m: float(np.mean([s.get(m, np.nan) for s in v]))
                for m in ("pr_auc", "brier", "ece", "log_loss")} for k, v in out.items()}


def tuning_markdown(payload, top=12):
    groups = [g for g in ("real", "synthetic features", "synthetic matrices")
              if g in payload["ranked"][0]["summary"]]
    header = ["config", "mean dPR-AUC", *(f"dPR-AUC {g}" for g in groups), "share >= stacking",
              "mean dBrier"]
    defaults = tuple(sorted(payload["package_defaults"].items()))
    chosen = tuple(sorted(payload["chosen"].items()))

    def row(r):
        s = r["summary"]
        key = tuple(sorted(r["config"].items()))
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        if key == defaults:
            cfg += " **(package default)**"
        if key == chosen:
            cfg += " **(chosen)**"
        return [cfg, f"{s['overall']['d_pr_auc']:+.4f}",
                *(f"{s[g]['d_pr_auc']:+.4f}" for g in groups),
                f"{s['overall']['win']:.2f}", f"{s['overall']['d_brier']:+.5f}"]

    shown = payload["ranked"][:top]
    shown += [r for r in payload["ranked"]
              if tuple(sorted(r["config"].items())) in (defaults, chosen) and r not in shown]
    lines = [
        "# skcfe default tuning (cross-validation, never the test splits)",
        "",
        (
            f"Measured {C.machine_line(payload['machine'])}. {payload['n_problems']} problems; "
            "dPR-AUC is skcfe minus StackingClassifier (LR) on the same rows, averaged within "
            "each group, then over groups. latent_dim 'fX' is a fraction X of the matrix's "
            "columns; None (skcfe's default) and f1.0 are as many factors as columns."
        ),
        "",
        f"Chosen: `{payload['chosen']}`",
        "",
        (
            "Stage decisions (a candidate replaces the incumbent only when its paired gain "
            f"exceeds {SWITCH_SE:g} standard errors):"
        ),
        "",
        C.markdown_table(["stage", "best candidate (changes)", "paired gain", "SE", "switched",
                          "changes reverted as noise"], [
            [d["stage"], ", ".join(f"{k}={v}" for k, v in d["best"].items()
                                   if d["incumbent"].get(k) != v) or "(incumbent)",
             f"{d['gain']:+.4f}", f"{d['se']:.4f}", "yes" if d["switched"] else "no",
             "; ".join(d.get("reverted", [])) or "-"]
            for d in payload["decisions"]]),
        "",
        f"Top {top} of {len(payload['ranked'])} configurations tried:",
        "",
        C.markdown_table(header, [row(r) for r in shown]),
        "",
    ]
    if payload.get("multiclass_check"):
        lines += ["Multiclass check (digits, 10 classes; inner 3-fold CV of 2 training splits):",
                  "", C.markdown_table(["config", "PR-AUC", "Brier", "ECE", "log loss"], [
                      [k, f"{v['pr_auc']:.4f}", f"{v['brier']:.4f}", f"{v['ece']:.4f}",
                       f"{v['log_loss']:.4f}"] for k, v in payload["multiclass_check"].items()]),
                  ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 5 data sets, flights 20k rows")
    parser.add_argument("--datasets", nargs="+", choices=ALL_DATASETS, metavar="NAME",
                        help=f"data sets (default: all): {', '.join(ALL_DATASETS)}")
    parser.add_argument("--seeds", nargs="+", type=int, help="split seeds (default 0..4; quick 0..2)")
    parser.add_argument("--flights-rows", type=int,
                        help=f"flights subsample (default {FLIGHTS_ROWS['full']}, quick "
                             f"{FLIGHTS_ROWS['quick']})")
    parser.add_argument("--torch", action="store_true",
                        help="add skcfe backend='torch' columns when skcfe.backends.torch imports")
    parser.add_argument("--out", default=str(HERE / "results"), help="output folder")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute base matrices (default: cached in ~/.cache/skcfe-benchmarks)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--tune", action="store_true", help="choose defaults by CV (no test splits)")
    mode.add_argument("--check", action="store_true",
                      help="verify the cached shortcuts against StackingClassifier and skcfe")
    mode.add_argument("--report", metavar="JSON",
                      help="rewrite the markdown report of an earlier run's quality JSON")
    parser.add_argument("--tune-real-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    log = C.Progress()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        if args.check:
            return run_check(args, log)
        if args.report:
            with open(args.report) as fh:
                results = json.load(fh)
            report = quality_markdown(results)
            Path(args.report).with_suffix(".md").write_text(report)
            print(report)
            return results
        if args.tune:
            return run_tune(args, log)
        return run_quality(args, log)


if __name__ == "__main__":
    main()
