"""How should skcfe choose its combiner? Decided on training rows only.

Each split's training rows (their out-of-fold base matrix ``R_train``, from
``bench_combiners.base_layer``) are split again 70/30: the selection runs on
the 70%, and every rule is scored on the 30%. The test rows of the split are
never read, so the choice made here stays honest for ``bench_combiners.py``.

Rules compared, all over the same candidate library and inner CV:

- ``best``: the candidate with the best pooled inner-CV score (discrete Super Learner);
- ``anchored``: the best, unless its paired bootstrap advantage over the
  configured CF aggregator is under one standard error;
- ``ensemble``: non-negative log-linear pool of every candidate's inner-CV
  predictions (continuous Super Learner);
- ``hybrid``: the ensemble, unless the best candidate's pooled score beats
  the ensemble's own cross-validated score (its pool weights refitted
  fold by fold on the candidates' out-of-fold predictions);
- ``switch``: the ensemble, unless the discrete choice scores better when it too
  is cross-validated (chosen fold by fold on the candidates' out-of-fold
  predictions, :func:`discrete_score`), so that neither side's score is
  biased upwards by a choice;
- ``linear pool``: the candidates' probabilities mixed with weights on the
  simplex that maximize the out-of-fold likelihood (:func:`mixture_weights`;
  R SuperLearner's convex combination), and ``linear pool, calibrated``, the
  mixture then Platt- or temperature-scaled on the same predictions;
- ``ensemble, focal gamma=G`` (binary): the ensemble's weights fitted by the
  focal loss instead of the log loss, then Platt-scaled (:func:`focal_pool`);
- ``ensemble, screened F``: the ensemble of only the candidates whose
  inner-CV score is at least ``F`` times the best (binary PR-AUC; for the
  negative log loss, at most ``1/F`` times the best loss), so that the pool
  follows the selection's criterion (:func:`screened_members`);
- ``cf``: the configured CF aggregator alone;
- ``greedy_sl``: greedy ensemble selection over the candidates' inner-CV
  predictions, calibrated by a one-feature pool (AutoGluon's weighted ensemble);
- ``ensemble, alpha=A`` (``--pool-alpha``): the ensemble with another L2
  penalty of its weights (the shipped one is ``_POOL_ALPHA``);
- ``ensemble, all singles`` / ``ensemble, top 10 singles``: the ensemble
  with every single base model in the pool, or the 10 best (the ensemble
  itself keeps the 5 best: ``skcfe._selection.pool_members``); they differ
  only with more than 5 base models (``--many``); ``ensemble, top 1 single``
  to ``top 3 singles``: fewer single models in the pool;

for each configuration in ``CONFIGS`` (``use_class_weights`` of the CF
candidates, repeats of the 5-fold CV), against StackingClassifier's final
estimator on the same rows.

Run::

    python benchmarks/tune_selection.py [--splits 10]
    python benchmarks/tune_selection.py --pool-alpha 0.1 0.3 3 10 --out tune_pool_alpha.md
    python benchmarks/tune_selection.py --out tune_pool_variants.md
    python benchmarks/tune_selection.py --many --out tune_pool_singles.md
        # bench_many_models' 20- and 60-model base layers (its five data sets)
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_combiners import BINARY, HERE, MULTICLASS, base_layer

from skcfe import CFEnsembleClassifier
from skcfe._losses import _focal_terms
from skcfe._selection import (
    _POOL_ALPHA,
    _POOL_MAX_SINGLES,
    candidate_features,
    candidate_library,
    fit_log_linear_pool,
    get_scorer,
    greedy_selection,
    pool_members,
    pool_proba,
    select,
    super_learner_weights,
)

# (use_class_weights of the CF candidates, repeats of the selection's 5-fold CV)
CONFIGS = ((False, 1),)


def anchored_choice(oof, y, sample_weight, scorer, *, anchor=0, n_boot=100, threshold=1.0,
                    random_state=None):
    """Index of the candidate to use: the best, unless it does not clearly beat ``anchor``.

    The best candidate by pooled out-of-fold score replaces the anchor only
    when its paired advantage exceeds ``threshold`` bootstrap standard errors
    (rows resampled, both candidates scored on the same resample): with few
    labeled rows of a class, the apparent winner among many candidates is
    often noise, and the anchor is the robust choice.
    """
    scores = np.array([[scorer(y, o, sample_weight) for o in cand] for cand in oof]).mean(axis=1)
    best = int(np.argmax(scores))
    if best == anchor or threshold <= 0:
        return best
    rng = np.random.default_rng(random_state)
    n = oof.shape[2]
    diffs = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        if len(np.unique(y[rows])) < oof.shape[3]:
            continue
        diffs.append(np.mean([scorer(y[rows], oof[best, r, rows], sample_weight[rows])
                              - scorer(y[rows], oof[anchor, r, rows], sample_weight[rows])
                              for r in range(oof.shape[1])]))
    gain = scores[best] - scores[anchor]
    return best if len(diffs) > 1 and gain > threshold * np.std(diffs) else anchor


def super_learner_score(oof, y, sample_weight, scorer, n_classes, n_splits=5, random_state=None):
    """Cross-validated score of the pool itself, from the candidates' out-of-fold predictions.

    The pool weights are refitted on the other folds of the first repeat's
    out-of-fold predictions and scored on the held-out fold (pooled over the
    folds, as :func:`select` scores candidates), so the pool can be compared
    with the best single candidate on the same footing. It costs pool fits
    only, no candidate is refitted.
    """
    F = candidate_features(oof[:, 0], n_classes)
    proba = np.empty((len(y), n_classes))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    for train, test in folds.split(np.zeros(len(y)), y):
        weights, intercept = fit_log_linear_pool(F[train], y[train], sample_weight[train],
                                                 n_classes)
        proba[test] = pool_proba(F[test], weights, intercept, n_classes)
    return scorer(y, proba, sample_weight)


def discrete_score(oof, y, sample_weight, scorer, n_classes, n_splits=5, random_state=None):
    """Cross-validated score of the discrete choice, on the folds of :func:`super_learner_score`.

    In each fold the candidate with the best score on the other folds'
    out-of-fold predictions is chosen, and its predictions of the held-out
    fold are kept; the kept predictions are pooled and scored once. Unlike
    the best candidate's own pooled score, this is not biased upwards by
    the choice among many candidates.
    """
    proba = np.empty((len(y), n_classes))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    for train, test in folds.split(np.zeros(len(y)), y):
        scores = [scorer(y[train], o[0, train], sample_weight[train]) for o in oof]
        proba[test] = oof[int(np.argmax(scores)), 0, test]
    return scorer(y, proba, sample_weight)


def mixture_weights(oof, y, sample_weight, n_iter=500):
    """Weights on the simplex of the linear pool ``sum_c w_c p_c`` that maximize the
    weighted log-likelihood of the first repeat's out-of-fold predictions (EM for
    the mixing weights of fixed components: the problem is convex)."""
    lik = np.clip(oof[:, 0, np.arange(len(y)), y], 1e-12, None)  # (n_candidates, n)
    w = np.full(len(oof), 1.0 / len(oof))
    s = sample_weight / sample_weight.sum()
    for _ in range(n_iter):
        mix = w @ lik
        new = w * ((lik / mix) @ s)
        if np.max(np.abs(new - w)) < 1e-10:
            return new
        w = new
    return w


def focal_pool(oof, y, sample_weight, gamma, alpha=_POOL_ALPHA):
    """Binary pool weights fitted by the focal loss, then Platt-scaled by the log loss.

    The focal loss discounts the rows the pool already gets right (mostly
    easy negatives), so the weights follow the hard rows, where the
    ranking at the top that PR-AUC reads is decided; the monotone Platt
    map then restores calibration without changing that ranking.
    Returns ``(weights, intercept, (slope, platt_intercept))``.
    """
    F = candidate_features(oof[:, 0], 2)
    m = F.shape[1]
    s = sample_weight / sample_weight.sum()
    ridge = alpha / sample_weight.sum()

    def objective(theta):
        z = F @ theta[:m] + theta[m]
        loss, grad = _focal_terms(y, z, gamma)
        g = grad * s
        value = np.dot(s, loss) + 0.5 * ridge * np.dot(theta[:m], theta[:m])
        return value, np.concatenate([F.T @ g + ridge * theta[:m], [g.sum()]])

    theta0 = np.concatenate([np.full(m, 1.0 / m), [0.0]])
    theta = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                     bounds=[(0.0, None)] * m + [(None, None)],
                     options={"maxiter": 500, "gtol": 1e-8}).x
    z = (F @ theta[:m] + theta[m])[:, None]
    return theta[:m], theta[m:], fit_log_linear_pool(z, y, sample_weight, 2)


def focal_pool_proba(pool, probas):
    """Probabilities of a :func:`focal_pool` from the candidates' ``probas``."""
    weights, intercept, platt = pool
    z = (candidate_features(probas, 2) @ weights + intercept[0])[:, None]
    return pool_proba(z, *platt, 2)


def screened_members(members, scores, fraction, n_classes):
    """The pool ``members`` whose inner-CV score is within ``fraction`` of the best.

    Binary scores (PR-AUC) must reach ``fraction`` times the best; negative
    log losses must be at most ``1 / fraction`` times the best loss.
    """
    scores = np.asarray(scores)
    best = scores[members].max()
    threshold = fraction * best if n_classes == 2 else best / fraction
    return np.array([c for c in members if scores[c] >= threshold])


def greedy_super_learner(oof, y, sample_weight, scorer, n_classes):
    """Counts and calibration pool of greedy ensemble selection over the candidates.

    AutoGluon's weighted ensemble: Caruana's forward selection with
    replacement over the candidates' out-of-fold probabilities, scored by
    the selection criterion; the average is then calibrated by a
    one-feature log-linear pool fitted on the same predictions.
    """
    counts = greedy_selection(oof[:, 0], y, sample_weight, scorer)
    average = np.tensordot(counts / counts.sum(), oof[:, 0], axes=1)
    F = candidate_features(average[None], n_classes)
    return counts, fit_log_linear_pool(F, y, sample_weight, n_classes)


def greedy_super_learner_proba(counts, pool, probas, n_classes):
    average = np.tensordot(counts / counts.sum(), probas, axes=1)
    return pool_proba(candidate_features(average[None], n_classes), *pool, n_classes)


def evaluate(name, seed, m=None, pool_alphas=()):
    """Every rule's validation score on one split; ``m``: the first ``m`` models of
    bench_many_models' 60-model base layer instead of bench_combiners' five;
    ``pool_alphas``: other penalties of the ensemble's weights."""
    if m is None:
        base = base_layer(name, seed)
    else:
        import bench_many_models as MM

        base = MM.first_models(MM.base_layer(name, seed), m)
        name = f"{name} m={m}"
    R, y, K = base.R_train, base.y_train, base.n_classes
    fit, val = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)
    scorer = get_scorer(None, K)
    w_fit, w_val = np.ones(len(fit)), np.ones(len(val))
    labeled = np.ones(len(fit), dtype=bool)
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        stacking = LogisticRegression().fit(R[fit], y[fit]).predict_proba(R[val])
        rows.append({"rule": "stacking", "score": scorer(y[val], stacking, w_val)})
        for cw, n_repeats in CONFIGS:
            params = CFEnsembleClassifier(use_class_weights=cw).get_params()
            names = [f"m{j}" for j in range(R.shape[1] // (1 if K == 2 else K))]
            library = candidate_library(names, K, params, seed, scorer)
            results, oof = select(R[fit], y[fit], labeled, w_fit, library=library, scorer=scorer,
                                  n_classes=K, n_repeats=n_repeats, random_state=seed)
            val_proba = np.stack([c.fit(R[fit], y[fit], labeled, w_fit, K).predict_proba(R[val])
                                  for _, c in library])
            best = int(np.argmax(results["pooled_test_score"]))
            anchored = anchored_choice(oof, y[fit], w_fit, scorer, random_state=seed)
            pooled = {}
            for rule, max_singles, alpha in (
                ("ensemble", _POOL_MAX_SINGLES, _POOL_ALPHA),
                ("ensemble, all singles", len(library), _POOL_ALPHA),
                ("ensemble, top 10 singles", 10, _POOL_ALPHA),
                ("ensemble, top 1 single", 1, _POOL_ALPHA),
                ("ensemble, top 2 singles", 2, _POOL_ALPHA),
                ("ensemble, top 3 singles", 3, _POOL_ALPHA),
                *((f"ensemble, alpha={a:g}", _POOL_MAX_SINGLES, a) for a in pool_alphas),
            ):
                keep = pool_members(results["candidate"], results["pooled_test_score"],
                                    max_singles)
                wts, b = super_learner_weights(oof[keep], y[fit], w_fit, K, alpha)
                pooled[rule] = pool_proba(candidate_features(val_proba[keep], K), wts, b, K)
            ens = pooled["ensemble"]
            pool_score = super_learner_score(oof, y[fit], w_fit, scorer, K, random_state=seed)
            counts, gpool = greedy_super_learner(oof, y[fit], w_fit, scorer, K)
            greedy_sl = greedy_super_learner_proba(counts, gpool, val_proba, K)
            hybrid = ens if pool_score >= results["pooled_test_score"][best] else val_proba[best]
            keep = pool_members(results["candidate"], results["pooled_test_score"])
            mix = mixture_weights(oof[keep], y[fit], w_fit)
            linear = np.tensordot(mix, val_proba[keep], axes=1)
            mix_pool = fit_log_linear_pool(
                candidate_features(np.tensordot(mix, oof[keep, 0], axes=1)[None], K), y[fit],
                w_fit, K)
            linear_platt = pool_proba(candidate_features(linear[None], K), *mix_pool, K)
            honest = discrete_score(oof, y[fit], w_fit, scorer, K, random_state=seed)
            switch = ens if pool_score >= honest else val_proba[best]
            for fraction in (0.8, 0.9):
                screened = screened_members(keep, results["pooled_test_score"], fraction, K)
                wts, b = super_learner_weights(oof[screened], y[fit], w_fit, K)
                pooled[f"ensemble, screened {fraction:g}"] = pool_proba(
                    candidate_features(val_proba[screened], K), wts, b, K)
            for gamma in (1.0, 2.0):
                focal = ens
                if K == 2:
                    fp = focal_pool(oof[keep], y[fit], w_fit, gamma)
                    focal = focal_pool_proba(fp, val_proba[keep])
                pooled[f"ensemble, focal gamma={gamma:g}"] = focal
            tag = (" cw" if cw else "") + (f" x{n_repeats}" if n_repeats > 1 else "")
            for rule, proba in (("best", val_proba[best]), ("anchored", val_proba[anchored]),
                                *pooled.items(), ("hybrid", hybrid), ("switch", switch),
                                ("linear pool", linear), ("linear pool, calibrated", linear_platt),
                                ("cf", val_proba[0]),
                                ("greedy_sl", greedy_sl)):
                rows.append({"rule": rule + tag, "score": scorer(y[val], proba, w_val)})
    return [{"dataset": name, "split": seed, **row} for row in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--out", default="tune_selection.md")
    parser.add_argument("--pool-alpha", type=float, nargs="*", default=(),
                        help="other L2 penalties of the ensemble's weights to compare")
    parser.add_argument("--many", action="store_true",
                        help="bench_many_models' base layers, m = 20 and 60")
    args = parser.parse_args(argv)
    if args.many:
        from bench_many_models import DATASETS

        tasks = [(n, s, m) for n in args.datasets or DATASETS for m in (20, 60)
                 for s in range(args.splits)]
    else:
        tasks = [(n, s, None) for n in args.datasets or BINARY + MULTICLASS
                 for s in range(args.splits)]
    rows = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(evaluate)(*t, pool_alphas=args.pool_alpha) for t in tasks)
    frame = pd.DataFrame([r for split in rows for r in split])
    frame["model"] = frame["rule"]
    wide = frame.pivot_table(index=["dataset", "split"], columns="model", values="score")
    diff = wide.sub(wide["stacking"], axis=0).drop(columns="stacking")
    grouped = diff.groupby(level="dataset")
    z = grouped.mean() / (grouped.std() / np.sqrt(grouped.count()))
    summary = pd.DataFrame({
        "mean gain over stacking": diff.mean(),
        "datasets > +2 SE": (z > 2).sum(),
        "datasets < -2 SE": (z < -2).sum(),
        "worst z": z.min(),
    }).sort_values("mean gain over stacking", ascending=False)
    text = ("# Selection rule tuning (training rows only)\n\n"
            "Score (PR-AUC binary, negative log loss multiclass) on a 30% validation part of "
            "each split's training rows, minus StackingClassifier's on the same rows.\n\n"
            + summary.to_markdown(floatfmt="+.4f") + "\n\n## Per data set (mean paired gain)\n\n"
            + grouped.mean().to_markdown(floatfmt="+.4f") + "\n")
    (HERE / "results" / args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
