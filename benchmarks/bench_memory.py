"""Does tuning the combiner cost the base layer only once? (``memory=``)

GridSearchCV over 8 combiner candidates against the same search over 1
candidate, both with ``memory`` (a fresh cache each, so both pay the base
layer once per outer fold), and the 8-candidate search without a cache.
Goal: the 8-candidate search at most 1.5x the 1-candidate one.

Run::

    python benchmarks/bench_memory.py [--dataset ada] [--out results/memory.md]
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H

from skcfe import CFEnsembleClassifier

GRID = {"focal_gamma": [0.0, 2.0], "aggregator_alpha": [1.0, 10.0], "combiner": ["auto", "cf"]}


def search_seconds(X, y, grid, memory):
    search = GridSearchCV(CFEnsembleClassifier(random_state=0, memory=memory), grid, cv=3,
                          scoring="average_precision")
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ada")
    parser.add_argument("--out", default=str(H.RESULTS / "memory.md"), help="report file")
    args = parser.parse_args(argv)
    X, y = H.load(args.dataset)
    one = {key: values[:1] for key, values in GRID.items()}
    rows = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for label, grid, cached in (("1 candidate, memory", one, True),
                                    ("8 candidates, memory", GRID, True),
                                    ("8 candidates, no memory", GRID, False)):
            with tempfile.TemporaryDirectory() as cache:
                seconds = search_seconds(X, y, grid, cache if cached else None)
            rows.append({"search": label, "seconds": seconds})
    table = pd.DataFrame(rows).set_index("search")
    table["ratio to 1 candidate"] = table["seconds"] / table.loc["1 candidate, memory", "seconds"]
    text = (f"# GridSearchCV over the combiner with memory ({H.machine_line()})"
            f"\n\n{args.dataset}, default base estimators, 3-fold search, one thread; grid "
            f"{GRID}.\n\n" + table.to_markdown(floatfmt=".2f") + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
