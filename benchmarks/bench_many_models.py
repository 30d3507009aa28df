"""Many base models: does skcfe keep up when the base layer has 5, 20 or 60 models?

One cached base layer per split, ``skcfe.model_library(60, seed)``; m = 5 and 20
take its first columns (the first 5 are ``default_estimators``). Combiners: the
rivals of ``bench_combiners.py``, skcfe's default, ``combiner='cf'``, and the
latter with ``latent_dim`` by GridSearchCV. ``--diagnose`` (m = 20, 60): the CF
aggregator with one parameter changed, and the default with CF candidates added
(``combiner=default_candidates(...)`` plus ``CFCandidate(...)`` entries).

Run (one core; the first run fits the base layer)::

    nice python benchmarks/bench_many_models.py --n-jobs 1             # results/many_models.*
    nice python benchmarks/bench_many_models.py --diagnose --n-jobs 1  # many_models_diagnose.*
    python benchmarks/bench_many_models.py --quick                     # 2 splits, to output/
"""

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import CFEnsembleClassifier, model_library
from skcfe.level1.candidates import CFCandidate, default_candidates

SIZES = (5, 20, 60)
# Binary KEEL sets whose 60-model base layer fits an hour of one core (10-13 s a split).
DATASETS = ("ecoli3", "abalone9-18", "vehicle0", "pc1", "yeast4")
LATENT_GRID = (1, 2, 3, 5, 8, None)
CF_VARIANTS = [*({"latent_dim": d} for d in LATENT_GRID),
               *({"confidence": c} for c in ("uniform", "label_aware", "agreement")),
               {"lambda_reg": 0.01}, {"lambda_reg": 0.1}, {"aggregator_alpha": 100},
               {"aggregator_alpha": 1000}, {"aggregator_input": "proba"},
               {"latent_dim": 3, "aggregator_input": "proba"}]
EXTRA_CF = {"default + cf(latent_dim=1,3,5,8)": [{"latent_dim": d} for d in (1, 3, 5, 8)],
            "default + cf(proba), cf(alpha=1000)": [{"aggregator_input": "proba"},
                                                    {"aggregator_alpha": 1000}]}
memory = H.cache("many_models")


@memory.cache
def base_layer(name, seed):
    X, y = H.load(name)
    train, test = H.split(y, seed)
    return H.base_matrices(model_library(max(SIZES), seed), X[train], y[train], X[test], y[test])


def label(params):
    return ", ".join(f"{k}={v}" for k, v in params.items())


def with_extra_cf(names, extra):
    """The default's candidate list with CF candidates ``extra`` (overrides) after 'cf'."""
    listed = default_candidates(names, 2)
    added = [(f"cf({label(o)})", CFCandidate(**o))
             for o in extra if o.get("latent_dim", 0) < len(names)]
    return listed[:1] + added + listed[1:]


def evaluate(name, seed, diagnose=False):
    """Every combiner's test PR-AUC on one split at each m (one row per combiner and m)."""
    full = base_layer(name, seed)
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for m in SIZES[1:] if diagnose else SIZES:
            base = replace(full, R_train=full.R_train[:, :m], R_test=full.R_test[:, :m],
                           names=full.names[:m])

            def record(model, proba, m=m, base=base, **extra):
                rows.append({"dataset": name, "split": seed, "m": m, "model": model,
                             "pr_auc": H.scores(base.y_test, proba)["pr_auc"], **extra})

            for rival, combine in H.RIVALS.items():
                record(rival, combine(base))
            _, proba, fit_s = H.skcfe_fit(base, seed)
            record("skcfe default", proba, fit_s=fit_s)
            if diagnose:
                for params in CF_VARIANTS:
                    if (params.get("latent_dim") or 0) < m:
                        record(f"cf {label(params)}",
                               H.skcfe_fit(base, seed, combiner="cf", **params)[1])
                for model, extra in EXTRA_CF.items():
                    listed = with_extra_cf(base.names, extra)
                    record(model, H.skcfe_fit(base, seed, combiner=listed)[1])
                continue
            record("skcfe cf", H.skcfe_fit(base, seed, combiner="cf")[1])
            search = GridSearchCV(
                CFEnsembleClassifier("precomputed", combiner="cf", random_state=seed),
                {"latent_dim": [d for d in LATENT_GRID if d is None or d < m]},
                scoring="average_precision", cv=StratifiedKFold(5, shuffle=True,
                                                                random_state=seed))
            proba = H.skcfe_fit(base, seed, model=search)[1]
            record("skcfe cf tuned", proba, latent_dim=str(search.best_params_["latent_dim"]))
    return rows


def report(frame, diagnose):
    frame = frame[frame.pr_auc.notna()]  # older runs also logged the base layer's seconds
    models = list(dict.fromkeys(frame.model))
    means = frame.pivot_table(index="model", columns="m", values="pr_auc").loc[models]
    per_set = frame.pivot_table(index=["dataset", "m"], columns="model", values="pr_auc")
    lines = [f"# Many base models{': diagnosis' if diagnose else ''} ({H.machine_line()})", "",
             ("Test PR-AUC, 20 paired stratified 70/30 splits per data set. The base layer is "
             "`skcfe.model_library(60, seed)`; m = 5 and 20 are its first 5 and 20 models."), "",
             "## Mean PR-AUC over data sets", "", means.to_markdown(floatfmt=".4f"), "",
             "## Mean PR-AUC per data set", "",
             per_set[models].reset_index().to_markdown(index=False, floatfmt=".4f"), ""]
    ours = ["skcfe default", *EXTRA_CF] if diagnose else ["skcfe default", "skcfe cf tuned"]
    if diagnose:  # each CF variant against the CF aggregator at its defaults
        frame = frame.assign(model=frame.model.replace("cf latent_dim=None", "skcfe cf"))
        variants = [v for v in dict.fromkeys(frame.model) if v.startswith("cf ")]
        table = pd.concat(H.paired(frame[frame.model.isin([v, "skcfe cf"])], ours=v,
                                   by=("dataset", "m"), pooled=True).assign(rival=v)
                          for v in variants)
        lines += ["## CF variant minus `combiner='cf'` (paired, 'all': mean over data sets)", "",
                  H.paired_markdown(table[table.dataset == "all"], ("m",)), ""]
    for model in ours:
        table = H.paired(frame, ours=model, by=("dataset", "m"), pooled=True)
        table = table[table.rival.isin([*H.RIVALS, *ours])]
        losses = table[(table.z < -2) & (table.dataset != "all")]
        losses = losses.assign(dataset=losses.dataset + " m=" + losses.m.astype(str))
        lines += [f"## {model} minus each rival (paired; 'all': mean over data sets)", "",
                  H.paired_markdown(table, ("dataset", "m")), "",
                  f"Below a rival by more than 2 SE: {H.listing(losses)}.", ""]
    if not diagnose:
        picks = frame[frame.model == "skcfe cf tuned"].groupby(["dataset", "m"]).latent_dim
        lines += ["## latent_dim chosen by the inner CV (splits)", "", picks.agg(
            lambda d: ", ".join(f"{k}: {v}" for k, v in d.value_counts().items()))
            .reset_index().to_markdown(index=False),
            "", "## skcfe's fit on the precomputed matrix, seconds (median)", "",
            frame.pivot_table(index="m", columns="model", values="fit_s",
                              aggfunc="median").to_markdown(floatfmt=".2f"), ""]
    return "\n".join(lines)


def plot(frame, path):
    """Mean PR-AUC against m per combiner (mean over data sets of each split's score)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = frame.groupby(["split", "m", "model"]).pr_auc.mean().groupby(
        ["model", "m"]).agg(["mean", "sem"])
    fig, ax = plt.subplots(figsize=(7, 5))
    for model in dict.fromkeys(frame.model):
        s = stats.loc[model]
        ax.errorbar(s.index, s["mean"], yerr=s["sem"], marker="o", ms=3, capsize=2, label=model,
                    **({"lw": 2.2} if model.startswith("skcfe") else {"lw": 1.0, "ls": "--"}))
    ax.set_xscale("log")
    ax.set_xticks(SIZES, [str(m) for m in SIZES])
    ax.minorticks_off()
    ax.set(xlabel="number of base models m", ylabel="test PR-AUC, mean of data sets (SE)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = H.parser(__doc__)
    parser.add_argument("--diagnose", action="store_true", help="CF variants at m = 20, 60")
    args = parser.parse_args(argv)
    names = args.datasets or (DATASETS[:2] if args.quick else DATASETS)
    stem = H.stem(args, "many_models" + ("_diagnose" if args.diagnose else ""))
    tasks = [(n, s, args.diagnose) for n in names for s in H.seeds(args)]
    frame = H.run(evaluate, tasks, args, stem)
    stem.with_suffix(".md").write_text(report(frame, args.diagnose))
    if not args.diagnose:
        plot(frame, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
