"""Many base models: does the factorization denoise a large, correlated library?

The base layer is ``skcfe.model_library(60, seed)``, whose first 5 and 20
models are its smaller sizes (the first 5 are ``default_estimators``). Each
split's 60-model base layer is computed once (cached with joblib.Memory) and
every size m = 5, 20, 60 takes its first m columns, so the three sizes and
every combiner share one base layer per split: the training rows'
out-of-fold matrix (unshuffled 5-fold StratifiedKFold, skcfe's folds) and
the test rows' matrix from the models refit on every training row. 20
stratified 70/30 splits per data set; differences are paired per split.

Combiners: the rivals of ``bench_combiners.py`` (StackingClassifier's
final estimator, LR on clipped logit(R), the best single model by
out-of-fold PR-AUC, greedy ensemble selection, non-negative logit stacking,
soft voting) and skcfe through ``CFEnsembleClassifier('precomputed')``: its
default (``combiner='auto'``), the CF aggregator (``combiner='cf'``) at the
default ``latent_dim=None``, and the CF aggregator with ``latent_dim`` chosen
by GridSearchCV (5-fold, average precision) on the training rows' matrix.

``--diagnose`` asks why, at m = 20 and 60, on the same cached splits: the CF
aggregator at each fixed ``latent_dim``, with each ``confidence``, larger
``lambda_reg`` and ``aggregator_alpha``, and the default Super Learner with
``cf(latent_dim=k)`` (or other CF) candidates added to its library
(``results/many_models_diagnose.*``). ``--penalty``: the CF aggregator's
``aggregator_alpha`` against m, next to its twin without the factorization
(the same penalized LR on clipped logit(R)) (``results/many_models_penalty.*``).

Run (one core; the base layer is computed by the first and cached)::

    nice python benchmarks/bench_many_models.py --n-jobs 1             # 42 min
    nice python benchmarks/bench_many_models.py --diagnose --n-jobs 1  # 54 min
    nice python benchmarks/bench_many_models.py --penalty --n-jobs 1   # 22 min
    python benchmarks/bench_many_models.py --report      # tables and plot from the CSV
"""

import argparse
import re
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from joblib import Memory, Parallel, delayed
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import bench_combiners as BC
from datasets import KEEL_BINARY
from datasets import load as load_real

import skcfe._combiner
from skcfe import CFEnsembleClassifier, model_library
from skcfe._selection import CFCandidate

HERE = Path(__file__).resolve().parent
TEST_SIZE = 0.3
SIZES = (5, 20, 60)
# Issue 10's binary sets, the cheapest that fit an hour of one core with a
# 60-model base layer (see the report); kc1, page-blocks0, ada, abalone19 and
# segment0 are 2-10 times larger.
DATASETS = ("ecoli3", "abalone9-18", "vehicle0", "pc1", "yeast4")
DATA_NOTE = (
    "Data: ecoli3, abalone9-18, vehicle0, pc1 and yeast4 from issue 10's binary KEEL sets "
    "(336-1,484 rows, 3.4-23.5% positives, 24-54 training positives per split except "
    "vehicle0's 139), chosen for cost: the 60-model base layer takes 10-13 s per split on one "
    "core for these (measured on pc1 first: 16 s on a loaded machine), and the whole run had to "
    "fit about an hour of one core. kc1, segment0, ada, abalone19 and page-blocks0 have "
    "2,100-5,500 rows (by row count 2-5 times the cost, not measured); cm1 and yeast6 are as "
    "cheap as the chosen ones and were left out for time only."
)
LATENT_GRID = (1, 2, 3, 5, 8, None)
RIVALS = tuple(BC.RIVALS)
OURS = ("skcfe default", "skcfe cf tuned")
memory = Memory(C.cache_dir() / "many_models", verbose=0)


@memory.cache
def base_layer(name, seed):
    """The split's 60-model base matrices (``_common.BaseMatrices``), computed once and cached."""
    X, y, _ = load_real(name)
    train, test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y,
                                   random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        return C.base_matrices(model_library(max(SIZES), seed), X[train], y[train],
                               X[test], y[test])


def first_models(base, m):
    """The base layer of the library's first ``m`` models (binary: one column each)."""
    return replace(base, R_train=base.R_train[:, :m], R_test=base.R_test[:, :m],
                   names=base.names[:m],
                   oof_s={n: base.oof_s[n] for n in base.names[:m]},
                   refit_s={n: base.refit_s[n] for n in base.names[:m]},
                   predict_s={n: base.predict_s[n] for n in base.names[:m]})


def latent_grid(m):
    """``LATENT_GRID`` below the number of columns (``None`` is one factor per column)."""
    return [d for d in LATENT_GRID if d is None or d < m]


def fit_skcfe(base, model):
    start = time.perf_counter()
    model.fit(base.R_train, base.y_train)
    return model.predict_proba(base.R_test), time.perf_counter() - start


def cf_tuned(base, seed):
    """combiner='cf' with latent_dim chosen by 5-fold GridSearchCV on the training rows' R."""
    search = GridSearchCV(
        CFEnsembleClassifier("precomputed", combiner="cf", random_state=seed),
        {"latent_dim": latent_grid(base.n_estimators)}, scoring="average_precision",
        cv=StratifiedKFold(5, shuffle=True, random_state=seed), error_score="raise",
    )
    proba, fit_s = fit_skcfe(base, search)
    return proba, fit_s, search.best_params_["latent_dim"]


def evaluate(name, seed, sizes=SIZES):
    """Every combiner's scores on one split at each size m (one row per combiner and m)."""
    full = base_layer(name, seed)
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for m in sizes:
            base = first_models(full, m)

            def record(model, proba, m=m, base=base, **extra):
                proba = np.clip(proba, 0.0, 1.0)
                proba = proba / proba.sum(axis=1, keepdims=True)
                rows.append({"dataset": name, "split": seed, "m": m, "model": model,
                             **C.scores(base.y_test, proba), **extra})

            for rival, combine in BC.RIVALS.items():
                record(rival, combine(base))
            default = CFEnsembleClassifier("precomputed", random_state=seed)
            proba, fit_s = fit_skcfe(base, default)
            record("skcfe default", proba, fit_s=fit_s, chosen=top_weights(default, base.names))
            proba, fit_s = fit_skcfe(base, CFEnsembleClassifier("precomputed", combiner="cf",
                                                                random_state=seed))
            record("skcfe cf", proba, fit_s=fit_s)
            proba, fit_s, d = cf_tuned(base, seed)
            record("skcfe cf tuned", proba, fit_s=fit_s, latent_dim="m (None)" if d is None else str(d))
        rows.append({"dataset": name, "split": seed, "m": max(sizes), "model": "base layer",
                     "fit_s": full.base_fit_s + full.base_predict_s})
    return rows


def top_weights(model, names, k=3):
    """The Super Learner's largest pool weights, as 'name:weight' (what the default leans on).

    Precomputed columns are named ``column<j>``; they get the library's names back.
    """
    res = model.selection_results_
    if res is None or "weight" not in res:
        return model.combiner_
    order = np.argsort(-np.asarray(res["weight"]))[:k]
    label = [re.sub(r"column(\d+)", lambda g: names[int(g[1])], c) for c in res["candidate"]]
    return " ".join(f"{label[i]}:{res['weight'][i]:.2f}" for i in order if res["weight"][i] > 0)


# ---------------------------------------------------------------------------
# diagnosis: rank, confidence, regularization, and rank candidates in the library
# ---------------------------------------------------------------------------

DIAGNOSE_SIZES = (20, 60)
# Candidates added to the default Super Learner's library: the fixes under test.
EXTRA_CANDIDATES = {
    "default + cf(latent_dim=1,3,5,8)": [(f"cf(latent_dim={d})", {"latent_dim": d})
                                         for d in (1, 3, 5, 8)],
    "default + cf(proba), cf(alpha=1000)": [("cf(aggregator_input=proba)",
                                             {"aggregator_input": "proba"}),
                                            ("cf(aggregator_alpha=1000)",
                                             {"aggregator_alpha": 1000})],
}
CF_VARIANTS = [
    *[(f"cf latent_dim={d}", {"latent_dim": d}) for d in LATENT_GRID],
    *[(f"cf confidence={c}", {"confidence": c}) for c in ("uniform", "label_aware", "agreement")],
    *[(f"cf lambda_reg={lam:g}", {"lambda_reg": lam}) for lam in (1e-2, 1e-1)],
    *[(f"cf aggregator_alpha={a:g}", {"aggregator_alpha": a}) for a in (100, 1000)],
    ("cf aggregator_input=proba", {"aggregator_input": "proba"}),
    ("cf latent_dim=3, aggregator_input=proba", {"latent_dim": 3, "aggregator_input": "proba"}),
]


def extended_library(extra):
    """``candidate_library`` with CF candidates ``extra`` ([(name, overrides)]) after 'cf'."""
    original = skcfe._combiner.candidate_library

    def extended(names, n_classes, cf_params, seed, scorer, **kwargs):
        library = original(names, n_classes, cf_params, seed, scorer, **kwargs)
        have = {name for name, _ in library}
        added = [(name, CFCandidate(cf_params, seed, **overrides)) for name, overrides in extra
                 if name not in have and overrides.get("latent_dim", 0) < len(names)]
        return library[:1] + added + library[1:]

    return extended


def diagnose(name, seed, sizes=DIAGNOSE_SIZES):
    """Why: the CF aggregator per fixed latent_dim, confidence, lambda_reg, aggregator
    penalty and input, and the default with extra CF candidates, on one split."""
    full = base_layer(name, seed)
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for m in sizes:
            base = first_models(full, m)
            # Trees, forests and small-k kNN predict exact 0 and 1: the share of
            # entries the CF aggregator's logit input clips (to 1e-3, 1 - 1e-3).
            clipped = float(np.mean((base.R_train < 1e-3) | (base.R_train > 1 - 1e-3)))

            def record(model, proba, m=m, base=base, clipped=clipped, **extra):
                rows.append({"dataset": name, "split": seed, "m": m, "model": model,
                             "pr_auc": C.pr_auc(base.y_test, proba), "clipped": clipped,
                             **extra})

            for rival in ("stacking", "LR on logit(R)", "greedy selection", "nonneg logit"):
                record(rival, BC.RIVALS[rival](base))
            for label, params in CF_VARIANTS:
                if (params.get("latent_dim") or 0) >= m:
                    continue
                proba, fit_s = fit_skcfe(base, CFEnsembleClassifier(
                    "precomputed", combiner="cf", random_state=seed, **params))
                record(label, proba, fit_s=fit_s)
            proba, fit_s = fit_skcfe(base, CFEnsembleClassifier("precomputed", random_state=seed))
            record("skcfe default", proba, fit_s=fit_s)
            for label, extra in EXTRA_CANDIDATES.items():
                with mock.patch.object(skcfe._combiner, "candidate_library",
                                       extended_library(extra)):
                    model = CFEnsembleClassifier("precomputed", random_state=seed)
                    proba, fit_s = fit_skcfe(base, model)
                record(label, proba, fit_s=fit_s, chosen=top_weights(model, base.names))
    return rows


# The aggregator's penalty against m, and its twin without the factorization:
# LogisticRegression(C=1/alpha) on the logit of R clipped as the CF aggregator clips.
PENALTIES = (10, 30, 100, 300)


def twin_proba(base, alpha):
    """The CF aggregator without the factorization: LR(C=1/alpha) on clipped logit(R)."""
    from sklearn.linear_model import LogisticRegression

    def logit(R):
        R = np.clip(R, 1e-3, 1 - 1e-3)
        return np.log(R) - np.log1p(-R)

    lr = LogisticRegression(C=1 / alpha, max_iter=1000).fit(logit(base.R_train), base.y_train)
    return lr.predict_proba(logit(base.R_test))


def penalty(name, seed, sizes=SIZES):
    """The CF aggregator at several aggregator_alpha, its no-factorization twin, and the
    default Super Learner with aggregator_alpha=100, at every m, on one split."""
    full = base_layer(name, seed)
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for m in sizes:
            base = first_models(full, m)

            def record(model, proba, m=m, base=base, **extra):
                rows.append({"dataset": name, "split": seed, "m": m, "model": model,
                             "pr_auc": C.pr_auc(base.y_test, proba), **extra})

            for rival in ("stacking", "greedy selection", "nonneg logit"):
                record(rival, BC.RIVALS[rival](base))
            for alpha in PENALTIES:
                proba, fit_s = fit_skcfe(base, CFEnsembleClassifier(
                    "precomputed", combiner="cf", aggregator_alpha=alpha, random_state=seed))
                record(f"cf aggregator_alpha={alpha}", proba, fit_s=fit_s)
                record(f"LR(C=1/{alpha}) on logit(R)", twin_proba(base, alpha))
            if m > 5:
                proba, fit_s = fit_skcfe(base, CFEnsembleClassifier(
                    "precomputed", combiner="cf", latent_dim=5, aggregator_alpha=100,
                    random_state=seed))
                record("cf latent_dim=5, aggregator_alpha=100", proba, fit_s=fit_s)
            for alpha in (10, 100):
                proba, fit_s = fit_skcfe(base, CFEnsembleClassifier(
                    "precomputed", aggregator_alpha=alpha, random_state=seed))
                record(f"skcfe default, aggregator_alpha={alpha}", proba, fit_s=fit_s)
    return rows


def penalty_report(frame, names, header):
    models = list(dict.fromkeys(frame.model))
    means = frame.pivot_table(index="model", columns="m", values="pr_auc").loc[models]
    lines = [f"# Many base models: the aggregator's penalty against m ({header})", "",
             ("Same splits and base layer as `many_models.md` (20 per data set). "
             "`cf aggregator_alpha=a`: the CF aggregator alone (`combiner='cf'`, "
             "`latent_dim=None`); `LR(C=1/a) on logit(R)`: its twin without the factorization "
             "(the same penalty on the summed loss, R clipped to [1e-3, 1 - 1e-3] as the CF "
             "aggregator clips). Test PR-AUC."), "",
             "## Mean PR-AUC over data sets and splits", "", means.to_markdown(floatfmt=".4f"), ""]
    pairs = [(f"cf aggregator_alpha={a}", "cf aggregator_alpha=10") for a in PENALTIES[1:]]
    pairs += [(f"cf aggregator_alpha={a}", f"LR(C=1/{a}) on logit(R)") for a in PENALTIES]
    pairs += [("cf aggregator_alpha=100", r) for r in ("stacking", "greedy selection",
                                                       "nonneg logit")]
    pairs += [("cf latent_dim=5, aggregator_alpha=100", "cf aggregator_alpha=100"),
              ("skcfe default, aggregator_alpha=100", "skcfe default, aggregator_alpha=10")]
    parts = []
    for ours, rival in pairs:
        table = paired(frame[frame.model.isin([ours, rival])], ours)
        parts.append(table[table.rival == rival].assign(comparison=f"{ours} minus {rival}"))
    table = pd.concat(parts)
    wide = table.assign(cell=table.apply(cell, axis=1)).pivot(
        index=["comparison", "dataset"], columns="m", values="cell")
    order = {c: k for k, c in enumerate(dict.fromkeys(table.comparison))}
    sets = {n: k for k, n in enumerate([*names, "all"])}
    wide = wide.sort_index(key=lambda idx: idx.map(order if idx.name == "comparison" else sets))
    lines += ["## Paired differences", "",
              ("Mean (SE) and median of the paired difference, [splits where the first is at "
              "least as good / splits]; 'all': mean over the data sets."), "",
              wide.reset_index().to_markdown(index=False), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# paired differences and the report
# ---------------------------------------------------------------------------


def paired(frame, ours, metric="pr_auc"):
    """Per (data set, m) and rival: mean, SE, median of ``ours - rival`` and ours' wins (ties count)."""
    wide = frame.pivot_table(index=["dataset", "m", "split"], columns="model", values=metric)
    out = []
    for rival in wide.columns.drop(ours):
        diff = (wide[ours] - wide[rival]).dropna()
        groups = diff.groupby(level=["dataset", "m"], sort=False)
        stats = pd.DataFrame({"mean": groups.mean(), "se": groups.std() / np.sqrt(groups.count()),
                              "median": groups.median(), "wins": (diff >= 0).groupby(
                                  level=["dataset", "m"], sort=False).sum(),
                              "n": groups.count()})
        # Pooled over data sets: splits are independent, so the SEs add in quadrature.
        for m, part in stats.groupby(level="m", sort=False):
            pooled = {"mean": part["mean"].mean(),
                      "se": np.sqrt((part["se"] ** 2).sum()) / len(part),
                      "median": diff.xs(m, level="m").median(),
                      "wins": part["wins"].sum(), "n": part["n"].sum()}
            stats.loc[("all", m), list(pooled)] = list(pooled.values())
        stats["rival"] = rival
        out.append(stats.reset_index())
    table = pd.concat(out, ignore_index=True)
    table["z"] = table["mean"] / table["se"].replace(0, np.nan)
    return table


def cell(row):
    return (f"{row['mean']:+.4f} ({row['se']:.4f}) med {row['median']:+.4f} "
            f"[{int(row['wins'])}/{int(row['n'])}]")


def ordered(table, names):
    """Rows in data-set order then m, 'all' last."""
    order = {name: k for k, name in enumerate([*names, "all"])}
    return table.sort_index(key=lambda idx: idx.map(order) if idx.name == "dataset" else idx)


def paired_markdown(frame, ours, names, rivals):
    table = paired(frame, ours)
    table = table[table.rival.isin(rivals)]
    wide = table.assign(cell=table.apply(cell, axis=1)).pivot(
        index=["dataset", "m"], columns="rival", values="cell")
    wide = ordered(wide[[r for r in rivals if r in wide.columns]], names)
    return wide.reset_index().to_markdown(index=False)


def verdict(frame, ours, rivals):
    table = paired(frame, ours)
    table = table[table.rival.isin(rivals) & (table.dataset != "all")]
    lines = []
    for m, part in table.groupby("m"):
        better = part[part.z > 2]
        worse = part[part.z < -2]
        lines.append(
            f"- m = {m}: better by > 2 SE in {len(better)} of {len(part)} (data set, rival) "
            f"comparisons; worse by > 2 SE in {len(worse)}"
            + (": " + "; ".join(f"{r.dataset} vs {r.rival} {r['mean']:+.4f} (SE {r.se:.4f})"
                                for _, r in worse.iterrows()) if len(worse) else "") + ".")
    return lines


def report(frame, names, header):
    models = [m for m in [*RIVALS, "skcfe default", "skcfe cf", "skcfe cf tuned"]
              if m in set(frame.model)]
    scored = frame[frame.model.isin(models)]
    means = scored.pivot_table(index=["dataset", "m"], columns="model", values="pr_auc")
    means = ordered(means, names)[models]
    overall = scored.groupby(["m", "model"]).pr_auc.mean().unstack()[models]
    overall.index = pd.MultiIndex.from_product([["mean of sets"], overall.index],
                                               names=["dataset", "m"])
    lines = [f"# Many base models ({header})", "",
             ("PR-AUC on the test rows of 20 paired stratified 70/30 splits per data set. The base "
             "layer is `skcfe.model_library(60, seed)`; m = 5 and 20 are its first 5 and 20 models "
             "(5 = `default_estimators`), on the same split and the same out-of-fold matrix."), "",
             DATA_NOTE, "",
             "## Mean PR-AUC", "",
             pd.concat([means, overall]).reset_index().to_markdown(index=False, floatfmt=".4f"), ""]
    for ours in OURS:
        rivals = [r for r in models if r != ours]
        lines += [f"## {ours} minus each rival", "",
                  ("Mean (SE) and median of the paired PR-AUC difference, [splits where "
                  f"{ours} is at least as good / splits]. 'all': mean over the data sets, SE "
                  "from theirs in quadrature."), "",
                  paired_markdown(scored, ours, names, rivals), "",
                  *verdict(scored, ours, [r for r in rivals if r in RIVALS]), ""]
    tuned = frame[frame.model == "skcfe cf tuned"]
    if not tuned.empty:
        picks = tuned.groupby(["dataset", "m"]).latent_dim.agg(
            lambda d: ", ".join(f"{k}: {v}" for k, v in d.value_counts().items()))
        lines += ["## latent_dim chosen by the inner CV (splits)", "",
                  ordered(picks.to_frame(), names).reset_index().to_markdown(index=False), ""]
    default = frame[frame.model == "skcfe default"]
    if "chosen" in default:
        top = default.groupby(["dataset", "m"]).chosen.agg(lambda c: c.iloc[0])
        lines += ["## skcfe default: largest pool weights (first split)", "",
                  ordered(top.to_frame(), names).reset_index().to_markdown(index=False), ""]
    fit = frame[frame.fit_s.notna() & (frame.model != "base layer")].pivot_table(
        index="m", columns="model", values="fit_s", aggfunc="median")
    base = frame[frame.model == "base layer"].groupby("dataset").fit_s.median()
    lines += ["## Seconds per split (median, one thread)", "",
              "skcfe's fit on the precomputed matrix:", "", fit.to_markdown(floatfmt=".2f"), "",
              "The 60-model base layer (out-of-fold fits, refits, test predictions): "
              + ", ".join(f"{name} {base[name]:.1f} s" for name in names if name in base) + ".",
              ""]
    return "\n".join(lines)


def diagnose_report(frame, names, header):
    models = list(dict.fromkeys(frame.model))
    means = frame.pivot_table(index="model", columns="m", values="pr_auc").loc[models]
    per_set = frame.pivot_table(index="model", columns=["m", "dataset"], values="pr_auc")
    clipped = frame.groupby(["m", "dataset"]).clipped.mean().unstack("dataset")[list(names)]
    lines = [f"# Many base models: rank, confidence, regularization ({header})", "",
             ("Same splits and base layer as `many_models.md` (20 per data set). `cf ...` rows "
             "are the CF aggregator alone (`combiner='cf'`) with one parameter changed from "
             "skcfe's defaults (`latent_dim=None`, `confidence='certainty'`, `lambda_reg=1e-3`, "
             "`aggregator_alpha=10`, `aggregator_input='logit'`); `default + ...` rows are "
             "skcfe's default Super Learner with those CF candidates added to its library. "
             "Test PR-AUC."), "",
             "## Mean PR-AUC over data sets and splits", "", means.to_markdown(floatfmt=".4f"), "",
             "## Per data set", "", per_set.loc[models].to_markdown(floatfmt=".4f"), "",
             ("## Share of training entries of R outside [1e-3, 1 - 1e-3] (clipped by the "
             "aggregator's logit input)"), "", clipped.to_markdown(floatfmt=".2f"), ""]
    cf_rows = [m for m in models if m.startswith("cf ") and m != "cf latent_dim=None"]
    parts = []
    for variant in cf_rows:
        table = paired(frame, variant)
        parts.append(table[(table.rival == "cf latent_dim=None") & (table.dataset == "all")]
                     .assign(variant=variant))
    table = pd.concat(parts)
    wide = table.assign(cell=table.apply(cell, axis=1)).pivot(index="variant", columns="m",
                                                              values="cell")
    lines += ["## CF variant minus the default CF aggregator (paired, mean over data sets)", "",
              ("Mean (SE) and median of the paired difference, [splits where the variant is "
              "at least as good / splits]."), "", wide.loc[cf_rows].to_markdown(), ""]
    rivals = ["stacking", "LR on logit(R)", "greedy selection", "nonneg logit", "skcfe default"]
    for ours in ("skcfe default", *EXTRA_CANDIDATES):
        table = paired(frame, ours)
        table = table[table.rival.isin([r for r in rivals if r != ours])]
        wide = table.assign(cell=table.apply(cell, axis=1)).pivot(
            index=["dataset", "m"], columns="rival", values="cell")
        lines += [f"## {ours} minus rival (paired PR-AUC)", "",
                  ordered(wide, names).reset_index().to_markdown(index=False), ""]
    for ours in EXTRA_CANDIDATES:
        part = frame[frame.model == ours]
        top = part.groupby(["dataset", "m"]).chosen.agg(lambda c: c.iloc[0])
        lines += [f"## {ours}: largest pool weights (first split)", "",
                  ordered(top.to_frame(), names).reset_index().to_markdown(index=False), ""]
    return "\n".join(lines)


def plot(frame, names, path):
    """Mean PR-AUC against m per combiner, one panel per data set and one for their mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in [*RIVALS, "skcfe default", "skcfe cf", "skcfe cf tuned"]
              if m in set(frame.model)]
    frame = frame[frame.model.isin(models)]
    panels = [*names, "mean of data sets"]
    cols = 3
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        part = frame if panel == panels[-1] else frame[frame.dataset == panel]
        if panel == panels[-1]:  # mean over data sets of each split's score
            part = part.groupby(["split", "m", "model"], as_index=False).pr_auc.mean()
        stats = part.groupby(["model", "m"]).pr_auc.agg(["mean", "sem"])
        for model in models:
            s = stats.loc[model]
            style = {"lw": 2.2} if model.startswith("skcfe") else {"lw": 1.0, "ls": "--"}
            ax.errorbar(s.index, s["mean"], yerr=s["sem"], marker="o", ms=3, capsize=2,
                        label=model, **style)
        ax.set_xscale("log")
        ax.set_xticks(SIZES, [str(m) for m in SIZES])
        ax.minorticks_off()
        ax.set_title(panel)
        ax.set_xlabel("number of base models m")
        ax.set_ylabel("test PR-AUC (mean, SE)")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 splits of 2 data sets")
    parser.add_argument("--splits", type=int, default=None)
    parser.add_argument("--datasets", nargs="*", default=None, choices=KEEL_BINARY)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--base-only", action="store_true", help="fill the base-layer cache")
    parser.add_argument("--diagnose", action="store_true",
                        help="CF variants at m = 20, 60 (results/many_models_diagnose.*)")
    parser.add_argument("--penalty", action="store_true",
                        help="the aggregator penalty against m (results/many_models_penalty.*)")
    parser.add_argument("--report", action="store_true",
                        help="rewrite the tables and plot from the saved CSV")
    args = parser.parse_args(argv)
    names = args.datasets or (DATASETS[:2] if args.quick else DATASETS)
    seeds = range(args.splits or (2 if args.quick else 20))
    tasks = [(name, seed) for name in names for seed in seeds]
    mode = "_diagnose" if args.diagnose else "_penalty" if args.penalty else ""
    stem = HERE / "results" / ("many_models" + mode
                               + ("_quick" if args.quick else ""))
    if args.base_only:
        Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(base_layer)(n, s) for n, s in tasks)
        return
    if args.report:
        frame = pd.read_csv(stem.with_suffix(".csv"))
        names = list(dict.fromkeys(frame.dataset))
    else:
        job = diagnose if args.diagnose else penalty if args.penalty else evaluate
        rows = Parallel(n_jobs=args.n_jobs, verbose=5)(delayed(job)(n, s) for n, s in tasks)
        frame = pd.DataFrame([row for split in rows for row in split])
        frame.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.6g")
    header = C.machine_line(C.machine_info())
    if args.diagnose:
        stem.with_suffix(".md").write_text(diagnose_report(frame, names, header))
    elif args.penalty:
        stem.with_suffix(".md").write_text(penalty_report(frame, names, header))
    else:
        stem.with_suffix(".md").write_text(report(frame, names, header))
        plot(frame, names, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
