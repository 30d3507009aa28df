"""Speed benchmark: the ALS sweep against the machine's batched-solve floor, and fit overhead.

Run (full: n up to 1e6)::

    python benchmarks/bench_speed.py

Quick (n up to 1e5, fewer repeats)::

    python benchmarks/bench_speed.py --quick

(a) One ALS sweep (``skcfe.backends.als.balanced_sweep``: the instance step,
the classifier step, then balancing) on a synthetic problem, side by side in the same
process, with the same numpy and the same threads, with its floor: the bare
work of both steps, i.e. for each step the Gram matrices by one matrix product
``V @ (F outer F)``, the right-hand sides ``(V * R) @ F`` and one batched
``np.linalg.solve`` of the ``d x d`` SPD systems. Reports median seconds, the
ratio sweep / floor (target <= 1.5) and the peak memory (tracemalloc) of each.

(b) End-to-end fit of CFEnsembleClassifier against StackingClassifier with the
same base estimators and cv on satimage (and digits, 10 classes): skcfe's own
time beyond the base models' cross-validation and refit (target < 20%).
"""

import argparse
import json
import sys
import time
import tracemalloc
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import StackingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
from datasets import load as load_real

from skcfe import CFEnsembleClassifier, default_estimators
from skcfe._confidence import certainty, label_targets
from skcfe.backends import Problem, als

HERE = Path(__file__).resolve().parent
# Workspace bounds (float64 entries) tried for the floor; the floor of a cell
# is the fastest of them, so it is the best this bare approach does on this
# machine (too small: per-call overhead; too large: memory bandwidth).
FLOOR_WORKSPACES = (1 << 20, 1 << 22, 1 << 24)
LAMBDA = 0.1


def make_problem(n, q, seed=0):
    """A binary problem with q classifiers, as tests/test_als.py builds one."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    R = np.clip(0.5 + (y[:, None] - 0.5) * rng.uniform(0.1, 0.8, (n, q))
                + 0.2 * rng.standard_normal((n, q)), 0, 1)
    Cf = certainty(R, 2)
    w = rng.uniform(0.5, 2.0, n)
    return Problem(R=R, C=Cf, C_free=Cf, T=label_targets(y, 2, q), y=y,
                   labeled=np.ones(n, dtype=bool), row_weight=w, sample_weight=w, n_classes=2)


def floor_step(R, V, F, reg, workspace):
    """Bare batched ridge: Gram by matmul with ``F outer F``, right-hand sides, batched solve.

    Rows (and, when ``F outer F`` itself exceeds the workspace, observations)
    go in chunks of about ``workspace`` entries.
    """
    n_rows, n_obs = R.shape
    d = F.shape[1]
    d2 = d * d
    obs_chunk = max(1, min(n_obs, workspace // d2))
    row_chunk = max(1, min(n_rows, workspace // max(d2, n_obs)))
    outer = (F[:, :, None] * F[:, None, :]).reshape(n_obs, d2) if obs_chunk == n_obs else None
    Z = np.empty((n_rows, d))
    ridge = reg * np.eye(d)
    for start in range(0, n_rows, row_chunk):
        rows = slice(start, min(start + row_chunk, n_rows))
        if outer is not None:
            G = V[rows] @ outer
        else:
            G = np.zeros((rows.stop - rows.start, d2))
            for o in range(0, n_obs, obs_chunk):
                obs = slice(o, min(o + obs_chunk, n_obs))
                G += V[rows, obs] @ (F[obs, :, None] * F[obs, None, :]).reshape(-1, d2)
        b = (V[rows] * R[rows]) @ F
        Z[rows] = np.linalg.solve(G.reshape(-1, d, d) + ridge, b[:, :, None])[:, :, 0]
    return Z


def floor_sweep(R, V, RT, VT, X, Y, reg, workspace):
    """The floor of one sweep: both steps' bare work (transposes prepared beforehand)."""
    floor_step(R, V, X, reg, workspace)
    floor_step(RT, VT, Y, reg, workspace)


def time_call(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


def peak_mib(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def repeat(fn, k):
    """``fn`` called ``k`` times: a batch long enough to time."""

    def batch():
        for _ in range(k):
            fn()

    return batch


def time_cell(R, V, share, RT, VT, d, reps, rng):
    """Median seconds and peak memory of one sweep and of its floor at latent dimension d."""
    n, q = R.shape
    X0 = rng.standard_normal((q, d))
    Y0 = rng.standard_normal((n, d))
    sweep = partial(als.balanced_sweep, R, V, share, X0, LAMBDA)
    floors = {w: partial(floor_sweep, R, V, RT, VT, X0, Y0, LAMBDA, w) for w in FLOOR_WORKSPACES}
    # Warm up, then time batches of k calls (k makes a batch last at least
    # ~50 ms, so small cells are not timer noise), interleaving sweep and
    # floors so that all of them see the same machine state.
    start = time.perf_counter()
    sweep()
    k = max(1, int(np.ceil(0.05 / max(time.perf_counter() - start, 1e-6))))
    for floor in floors.values():
        floor()
    t_sweep, t_floor = [], {w: [] for w in floors}
    for _ in range(reps):
        t_sweep.append(time_call(repeat(sweep, k), 1)[0] / k)
        for w, floor in floors.items():
            t_floor[w].append(time_call(repeat(floor, k), 1)[0] / k)
    ms = float(np.median(t_sweep))
    best = min(t_floor, key=lambda w: np.median(t_floor[w]))
    mf = float(np.median(t_floor[best]))
    return {
        "n": n, "q": q, "d": d, "sweep_s": ms, "floor_s": mf, "ratio": ms / mf,
        "floor_workspace": best,
        "floor_s_by_workspace": {str(w): float(np.median(t)) for w, t in t_floor.items()},
        "sweep_peak_mib": peak_mib(sweep), "floor_peak_mib": peak_mib(floors[best]),
        "input_mib": (R.nbytes + V.nbytes) / 2**20, "repeats": reps,
    }


def sweep_rows(sizes, qs, ds, repeats, log):
    rows = []
    for n in sizes:
        for q in qs:
            problem = make_problem(n, q)
            V, share = als.factor_weights(problem, 0.5)
            R = problem.R
            del problem
            # The floor gets the classifier step's weighted, transposed matrices
            # ready-made (outside its timing); the sweep reads R and V in place.
            VT = np.ascontiguousarray((q * share[:, None] * V).T)
            RT = np.ascontiguousarray(R.T)
            rng = np.random.default_rng(1)
            reps = repeats if n < 1_000_000 else max(2, repeats // 2)
            for d in ds:
                row = time_cell(R, V, share, RT, VT, d, reps, rng)
                rows.append(row)
                log(f"n={n:>8} q={q:>3} d={d:>3}: sweep {row['sweep_s']:.4f}s floor "
                    f"{row['floor_s']:.4f}s ratio {row['ratio']:.2f}  peak sweep "
                    f"{row['sweep_peak_mib']:.0f} MiB, floor {row['floor_peak_mib']:.0f} MiB "
                    f"(R+V {row['input_mib']:.0f} MiB)")
    return rows


def profile_sweep(n, q, d, repeats=5):
    """Time each part of a balanced sweep, to explain a ratio above target."""
    problem = make_problem(n, q)
    V, share = als.factor_weights(problem, 0.5)
    R = problem.R
    X = np.random.default_rng(1).standard_normal((q, d))
    parts = {}

    def clock(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        parts[name] = parts.get(name, 0.0) + time.perf_counter() - start
        return out

    def outer_of(F):
        return (F[:, :, None] * F[:, None, :]).reshape(len(F), -1)

    def solve(G, b):
        return np.linalg.solve(G.reshape(n, d, d) + LAMBDA * np.eye(d), b[:, :, None])[:, :, 0]

    for _ in range(repeats):
        outer = clock("step 1: outer(F)", outer_of, X)
        G = clock("step 1: Gram matmul", np.matmul, V, outer)
        b = clock("step 1: rhs (V*R)@F", np.matmul, V * R, X)
        Y = clock("step 1: batched solve", solve, G, b)
        X2 = clock("step 2: ridge_solve (chunked, in place)", partial(
            als.ridge_solve, obs_weight=q * share), R.T, V.T, Y, LAMBDA)
        clock("balance", als.balance, Y, X2, share)
        clock("whole sweep", als.balanced_sweep, R, V, share, X, LAMBDA)
    return {k: v / repeats for k, v in parts.items()}


def end_to_end(dataset, repeats, log):
    X, y, info = load_real(dataset)
    estimators = default_estimators(0)
    folds = StratifiedKFold(5)
    out = {"dataset": dataset, "n": int(info["n"]), "n_classes": int(info["n_classes"])}

    def base_work():
        for _, est in estimators:
            cross_val_predict(clone(est), X, y, cv=folds, method="predict_proba")
            clone(est).fit(X, y)

    quality = __import__("bench_quality")
    q = len(estimators) * (1 if info["n_classes"] == 2 else info["n_classes"])
    recommended = quality.resolve(quality.recommended(), q)
    runs = {
        "base models: cross_val_predict + refit": base_work,
        "StackingClassifier": lambda: StackingClassifier(estimators, cv=5).fit(X, y),
        "skcfe default": lambda: CFEnsembleClassifier(estimators, random_state=0).fit(X, y),
        "skcfe recommended": lambda: CFEnsembleClassifier(
            estimators, random_state=0, **recommended).fit(X, y),
    }
    for label, fn in runs.items():
        med, times = time_call(fn, repeats)
        out[label] = med
        log(f"{dataset}: {label}: {med:.2f}s (runs {', '.join(f'{t:.2f}' for t in times)})")
    base = out["base models: cross_val_predict + refit"]
    for label in ("StackingClassifier", "skcfe default", "skcfe recommended"):
        out[f"{label} overhead"] = (out[label] - base) / base
    return out


def markdown(payload):
    m = payload["machine"]
    lines = [
        "# skcfe speed benchmark",
        "",
        f"Measured {C.machine_line(m)}; BLAS/OpenMP threads: {payload['threads']}.",
        "",
        "## (a) One ALS sweep against the batched-solve floor",
        "",
        (
            "Sweep: `skcfe.backends.als.balanced_sweep` (instance step + classifier step + "
            "balancing). Floor: "
            "for both steps, the Gram matrices by matmul `V @ (F outer F)`, the right-hand sides "
            "`(V * R) @ F` and `np.linalg.solve` of the stacked d x d systems, in row chunks of "
            "2^20, 2^22 or 2^24 entries, the fastest of the three per cell (same process, same "
            "numpy, same threads, interleaved runs). Median seconds; peak memory by "
            "tracemalloc, beyond the inputs R and V."
        ),
        "",
    ]
    rows = [[f"{r['n']:.0e}", r["q"], r["d"], f"{r['sweep_s']:.4g}", f"{r['floor_s']:.4g}",
             f"{r['ratio']:.2f}" + ("" if r["ratio"] <= 1.5 else " (miss)"),
             f"{r['sweep_peak_mib']:.0f}", f"{r['floor_peak_mib']:.0f}", f"{r['input_mib']:.0f}"]
            for r in payload["sweep"]]
    lines.append(C.markdown_table(
        ["n", "q", "d", "sweep s", "floor s", "ratio", "sweep peak MiB", "floor peak MiB",
         "R+V MiB"], rows))
    ratios = [r["ratio"] for r in payload["sweep"]]
    summary = (f"Ratio sweep / floor: median {np.median(ratios):.2f}, max {max(ratios):.2f}; "
               f"{sum(r <= 1.5 for r in ratios)} of {len(ratios)} cells within the 1.5 target.")
    lines += ["", summary, ""]
    if payload.get("profile"):
        p = payload["profile"]
        lines += [f"Profile of one sweep at n={p['n']}, q={p['q']}, d={p['d']} (seconds):", ""]
        lines.append(C.markdown_table(["part", "seconds"],
                                      [[k, f"{v:.4f}"] for k, v in p["parts"].items()]))
        lines.append("")
    lines += ["## (b) End-to-end fit against StackingClassifier", ""]
    rows = []
    for e in payload["end_to_end"]:
        for label in ("StackingClassifier", "skcfe default", "skcfe recommended"):
            rows.append([f"{e['dataset']} ({e['n']} rows, {e['n_classes']} classes)", label,
                         f"{e['base models: cross_val_predict + refit']:.2f}", f"{e[label]:.2f}",
                         f"{100 * e[label + ' overhead']:+.1f}%"])
    lines.append(C.markdown_table(
        ["data set", "model", "base models s", "fit s", "overhead beyond base models"], rows))
    lines.append("")
    return "\n".join(lines)


def plot(payload, path):
    """Sweep and floor seconds against n per (q, d), the ratios, and end-to-end fit times."""
    plt = C._pyplot()
    panels = 3 if payload.get("end_to_end") else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.8))
    cells = sorted({(r["q"], r["d"]) for r in payload["sweep"]})
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for color, (q, d) in zip(colors, cells):
        rows = sorted((r for r in payload["sweep"] if (r["q"], r["d"]) == (q, d)), key=lambda r: r["n"])
        n = [r["n"] for r in rows]
        axes[0].plot(n, [r["sweep_s"] for r in rows], "o-", color=color, label=f"q={q}, d={d}")
        axes[0].plot(n, [r["floor_s"] for r in rows], "x--", color=color)
        axes[1].plot(n, [r["ratio"] for r in rows], "o-", color=color, label=f"q={q}, d={d}")
    axes[0].set(xscale="log", yscale="log", xlabel="n (rows)", ylabel="seconds (median)",
                title="one ALS sweep (solid) and its floor (dashed)")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.5, color="red", lw=1, ls=":", label="target 1.5")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].set(xscale="log", xlabel="n (rows)", ylabel="sweep / floor", title="ratio (lower is better)")
    axes[1].legend(fontsize=7)
    if panels == 3:
        labels = ["StackingClassifier", "skcfe default", "skcfe recommended"]
        data = payload["end_to_end"]
        width = 0.8 / (len(labels) + 1)
        x = np.arange(len(data))
        axes[2].bar(x, [e["base models: cross_val_predict + refit"] for e in data], width,
                    label="base models alone", color="grey")
        for j, label in enumerate(labels, start=1):
            axes[2].bar(x + j * width, [e[label] for e in data], width, label=label)
        axes[2].set_xticks(x + 0.4 - width / 2)
        axes[2].set_xticklabels([f"{e['dataset']} ({e['n_classes']} classes)" for e in data])
        axes[2].set(ylabel="fit seconds (median)", title="end-to-end fit, same estimators and cv")
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1e5, 3 repeats")
    parser.add_argument("--sizes", nargs="+", type=int, help="values of n")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
    parser.add_argument("--repeats", type=int, help="timed runs per cell (default 5, quick 3)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results"), help="output folder")
    parser.add_argument("--report", metavar="JSON",
                        help="rewrite the markdown report and plot of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.report:
        payload = json.loads(Path(args.report).read_text())
        Path(args.report).with_suffix(".md").write_text(markdown(payload))
        plot(payload, Path(args.report).with_suffix(".png"))
        return payload
    sizes = args.sizes or ([1_000, 10_000, 100_000] if args.quick
                           else [1_000, 10_000, 100_000, 1_000_000])
    repeats = args.repeats or (3 if args.quick else 5)
    log = C.Progress()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    payload = {"machine": C.machine_info(), "threads": args.threads}
    with threadpool_limits(limits=args.threads):
        payload["sweep"] = sweep_rows(sizes, (10, 50), (4, 8, 20), repeats, log)
        worst = max(payload["sweep"], key=lambda r: r["ratio"])
        if worst["ratio"] > 1.5:
            n = min(worst["n"], 100_000)
            payload["profile"] = {"n": n, "q": worst["q"], "d": worst["d"],
                                  "parts": profile_sweep(n, worst["q"], worst["d"])}
        payload["end_to_end"] = [] if args.skip_end_to_end else [
            end_to_end(name, 1 if args.quick else 3, log) for name in ("satimage", "digits")
        ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    C.write_json(out / f"speed{suffix}.json", payload)
    report = markdown(payload)
    (out / f"speed{suffix}.md").write_text(report)
    plot(payload, out / f"speed{suffix}.png")
    print(report)


if __name__ == "__main__":
    main()
