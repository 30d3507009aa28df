"""Speed: one ALS sweep against the machine's batched-solve floor, up to n = 1e6.

Run::

    python benchmarks/bench_speed.py            # results/speed.*
    python benchmarks/bench_speed.py --quick    # n up to 1e5, fewer repeats, to output/

One ALS sweep (``skcfe.backends.als.balanced_sweep``: the instance step,
the classifier step, then balancing) on a synthetic problem, side by side in the same
process, with the same numpy and the same threads, with its floor: the bare
work of both steps, i.e. for each step the Gram matrices by one matrix product
``V @ (F outer F)``, the right-hand sides ``(V * R) @ F`` and one batched
``np.linalg.solve`` of the ``d x d`` SPD systems. Reports median seconds, the
ratio sweep / floor (target <= 1.5) and the peak memory (tracemalloc) of each.
Fit time against StackingClassifier: ``bench_combiners.py --timing``.
"""

import argparse
import json
import logging
import sys
import time
import timeit
import tracemalloc
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe._confidence import certainty, label_targets
from skcfe.backends import Problem, als

log = logging.getLogger("benchmarks").info
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


def peak_mib(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


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
        t_sweep.append(timeit.timeit(sweep, number=k) / k)
        for w, floor in floors.items():
            t_floor[w].append(timeit.timeit(floor, number=k) / k)
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


def sweep_rows(sizes, qs, ds, repeats):
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


def markdown(payload):
    sweep = pd.DataFrame(payload["sweep"])
    table = sweep[["n", "q", "d", "sweep_s", "floor_s", "ratio", "sweep_peak_mib",
                   "floor_peak_mib", "input_mib"]].astype({"n": float})
    table["ratio"] = table["ratio"].map(lambda r: f"{r:.2f}" + ("" if r <= 1.5 else " (miss)"))
    table.columns = ["n", "q", "d", "sweep s", "floor s", "ratio", "sweep peak MiB",
                     "floor peak MiB", "R+V MiB"]
    ratios = sweep["ratio"]
    lines = [
        "# skcfe speed benchmark",
        "",
        (f"Measured {H.machine_line(payload['machine'])}; BLAS/OpenMP threads: "
        f"{payload['threads']}."),
        "",
        "## One ALS sweep against the batched-solve floor",
        "",
        ("Sweep: `skcfe.backends.als.balanced_sweep` (instance step + classifier step + "
        "balancing). Floor: for both steps, the Gram matrices by matmul `V @ (F outer F)`, the "
        "right-hand sides `(V * R) @ F` and `np.linalg.solve` of the stacked d x d systems, in "
        "row chunks of 2^20, 2^22 or 2^24 entries, the fastest of the three per cell (same "
        "process, same numpy, same threads, interleaved runs). Median seconds; peak memory by "
        "tracemalloc, beyond the inputs R and V."),
        "",
        table.to_markdown(index=False, colalign=["right"] * 9,
                          floatfmt=(".0e", "", "", ".4g", ".4g", "", ".0f", ".0f", ".0f")),
        "",
        (f"Ratio sweep / floor: median {ratios.median():.2f}, max {ratios.max():.2f}; "
        f"{(ratios <= 1.5).sum()} of {len(ratios)} cells within the 1.5 target."),
        "",
    ]
    return "\n".join(lines)


def plot(payload, path):
    """Sweep and floor seconds against n per (q, d), and their ratios."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    sweep = pd.DataFrame(payload["sweep"]).sort_values("n")
    for color, ((q, d), rows) in zip(plt.cm.tab10.colors, sweep.groupby(["q", "d"])):
        axes[0].plot(rows["n"], rows["sweep_s"], "o-", color=color, label=f"q={q}, d={d}")
        axes[0].plot(rows["n"], rows["floor_s"], "x--", color=color)
        axes[1].plot(rows["n"], rows["ratio"], "o-", color=color, label=f"q={q}, d={d}")
    axes[0].set(xscale="log", yscale="log", xlabel="n (rows)", ylabel="seconds (median)",
                title="one ALS sweep (solid) and its floor (dashed)")
    axes[1].axhline(1.5, color="red", lw=1, ls=":", label="target 1.5")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].set(xscale="log", xlabel="n (rows)", ylabel="sweep / floor",
                title="ratio (lower is better)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 1e5, 3 repeats")
    parser.add_argument("--sizes", nargs="+", type=int, help="values of n")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
    parser.add_argument("--repeats", type=int, help="timed runs per cell (default 5, quick 3)")
    parser.add_argument("--out", help="output folder (default results/; --quick: output/)")
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    payload = {"machine": H.machine_info(), "threads": args.threads}
    with threadpool_limits(limits=args.threads):
        payload["sweep"] = sweep_rows(sizes, (10, 50), (4, 8, 20), repeats)
    out = Path(args.out or (H.OUTPUT if args.quick else H.RESULTS))
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (out / f"speed{suffix}.json").write_text(json.dumps(payload, indent=1))
    report = markdown(payload)
    (out / f"speed{suffix}.md").write_text(report)
    plot(payload, out / f"speed{suffix}.png")
    print(report)


if __name__ == "__main__":
    main()
