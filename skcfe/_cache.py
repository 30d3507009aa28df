"""The ``memory`` cache of the base layer (Pipeline's convention).

The out-of-fold matrix and the refit base estimators depend only on the base
estimators (their parameters and metadata requests), the training data, the
folds, and the metadata routed to the base estimators' ``fit`` (sample
weights and any other), never on the combiner's parameters. Caching them
with :class:`joblib.Memory` lets a search over ``focal_gamma``,
``aggregator_alpha``, ``combiner`` and the rest fit the base layer once per
outer fold.
"""

import functools
import inspect
import os
import pickle
import tempfile
import warnings

import joblib
import numpy as np
from sklearn.utils.validation import check_memory

from ._matrix import fit_base_layer


def base_layer(named_estimators, X, y, splits, fit_params, *, n_classes, n_jobs, verbose,
               classes=None, functions=()):
    """Out-of-fold matrix of the rows and the base estimators refit on all of them.

    The arguments are :func:`~skcfe._matrix.fit_base_layer`'s, and
    ``functions`` (:func:`function_key` of the estimators), which only
    enters the cache key; returns ``(R,
    estimators, calibrators)``, the matrix, the fitted base estimators and the
    calibrators that map the decision scores of those without predict_proba
    (all that predicting needs).
    """
    return fit_base_layer(named_estimators, X, y, splits, fit_params, n_classes=n_classes,
                          n_jobs=n_jobs, verbose=verbose, classes=classes)


def cached_base_layer(memory, *args, **kwargs):
    """:func:`base_layer` through ``memory`` (None, a path or a joblib.Memory).

    The key is every argument but ``n_jobs`` and ``verbose``: the estimators'
    parameters (they are hashed as pickles, seeds and metadata requests
    included), the code of the functions among them (:func:`function_key`),
    X, y, the folds (``groups`` enter through the folds they make) and the
    routed fit parameters of each base estimator.

    A cache directory that cannot be written falls back to an uncached fit
    with a warning; a cache entry that does not hold a base layer (a file
    replaced by another pickle) is refit and rewritten with a warning; a base
    estimator that cannot be hashed (a lambda among its parameters) is an
    error that names it.
    """
    named = args[0]
    try:
        memory = check_memory(memory)
        location = getattr(memory, "location", "")  # "": a custom cache object
        if isinstance(location, (str, os.PathLike)) and location:
            _check_writable(location)
    except OSError as exc:
        warnings.warn(
            f"memory={memory!r}: the cache directory cannot be used ({exc}); the base layer "
            "is fitted without caching. Give memory a writable directory, or memory=None.",
            UserWarning,
        )
        return base_layer(*args, **kwargs)
    if location is None:  # memory=None: nothing to cache, nothing to hash
        return base_layer(*args, **kwargs)
    kwargs["functions"] = function_key(named)
    _check_hashable(named, kwargs["functions"])
    cached = memory.cache(base_layer, ignore=["n_jobs", "verbose"])
    out = cached(*args, **kwargs)
    if not _is_base_layer(out, named, args[2]):
        warnings.warn(
            f"memory={memory!r} holds an entry for this base layer that is not one (got "
            f"{type(out).__name__}; was a cache file replaced?); refitting the base layer "
            "and rewriting the entry.",
            UserWarning,
        )
        out = cached.call(*args, **kwargs)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
            out = out[0]  # joblib >= 1.3 returns (output, metadata)
    return out


def _check_writable(location):
    """Raise OSError unless ``location`` is a directory this process can write to."""
    location = os.fspath(location)
    os.makedirs(location, exist_ok=True)
    with tempfile.TemporaryFile(dir=location):
        pass


def _is_base_layer(out, named, y):
    """Whether a cached output is :func:`base_layer`'s: (R, estimators, calibrators)."""
    return (isinstance(out, tuple) and len(out) == 3 and isinstance(out[0], np.ndarray)
            and out[0].ndim == 2 and out[0].shape[0] == len(y)
            and isinstance(out[1], list) and len(out[1]) == len(named))


def _check_hashable(named, functions):
    """A ValueError naming the base estimator that ``memory`` cannot hash."""
    for (name, est), (_, funcs) in zip(named, functions):
        try:
            joblib.hash((est, funcs))
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            culprits = [path for path, key in funcs if key[1] == "<lambda>" or "<locals>" in key[1]]
            what = f" (its parameter {culprits[0]!r} is a lambda or a local function)" if culprits else ""
            reason = str(exc.args[0] if exc.args else exc)[:200]
            raise ValueError(
                f"memory= cannot cache the base layer: base estimator {name!r} "
                f"({type(est).__name__}) cannot be pickled to key the cache{what}: {reason}. "
                "Define such functions at module level with def, or set memory=None."
            ) from exc


def function_key(named_estimators):
    """The code of every function among the base estimators' parameters.

    joblib hashes a function by its name, so a function redefined under the
    same name (a notebook cell run again) would hit the old function's cache
    entry. This key holds, for each estimator, each function parameter's
    (deep) name with :func:`_code_key` of it. Globals the function reads are
    not in the key.
    """
    return [(name, _function_params(est, name)) for name, est in named_estimators]


def _function_params(value, path, top=True):
    """(path, code key) of each function in ``value``'s parameters, recursively.

    An estimator's deep parameters already list its nested estimators'
    (``steps`` and ``name__param`` of a Pipeline), so only the base
    estimator itself (``top``) is entered.
    """
    key = _code_key(value) if callable(value) else None
    if key is not None:
        return [(path, key)]
    found = []
    if hasattr(value, "get_params") and not isinstance(value, type):
        if not top:
            return []
        try:
            params = value.get_params(deep=True)
        except Exception:  # noqa: BLE001 - a broken get_params is fit's to report
            return []
        for key, sub in params.items():
            found += _function_params(sub, f"{path}__{key}", top=False)
    elif isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            found += _function_params(sub, f"{path}[{i}]", top=False)
    elif isinstance(value, dict):
        for key, sub in value.items():
            found += _function_params(sub, f"{path}[{key!r}]", top=False)
    return found


def _code_key(func, depth=0):
    """Picklable identity of a function's behaviour: its code, defaults and closure.

    None for callables that are not Python functions (classes, estimators,
    builtins, which pickle by value or by a stable reference).
    """
    if depth > 5:
        return ("", "<too deep>")
    if isinstance(func, functools.partial):
        inner = _code_key(func.func, depth + 1)
        return inner and ("partial", inner[1], inner, _value_key(func.args, depth),
                          _value_key(func.keywords, depth))
    if inspect.ismethod(func):
        func = func.__func__
    if not inspect.isfunction(func):
        return None
    closure = []
    for cell in func.__closure__ or ():
        try:
            closure.append(_value_key(cell.cell_contents, depth))
        except ValueError:  # an empty cell
            closure.append(None)
    return (func.__module__, func.__qualname__, _code_bytes(func.__code__),
            _value_key(func.__defaults__, depth), _value_key(func.__kwdefaults__, depth),
            tuple(closure))


def _value_key(value, depth):
    """A default or closure value as it enters the key (functions by their code)."""
    if isinstance(value, (list, tuple)):
        return tuple(_value_key(v, depth) for v in value)
    if isinstance(value, dict):
        return tuple((k, _value_key(v, depth)) for k, v in value.items())
    key = _code_key(value, depth + 1) if callable(value) else None
    return value if key is None else key


def _code_bytes(code):
    """Bytecode, constants (nested code too) and names of a code object."""
    consts = tuple(_code_bytes(c) if inspect.iscode(c) else c for c in code.co_consts)
    return (code.co_code, consts, code.co_names)
