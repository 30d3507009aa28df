"""Where the metadata of ``fit`` goes: the base estimators and the splitter of ``cv``.

With scikit-learn's metadata routing enabled
(``sklearn.set_config(enable_metadata_routing=True)``), any metadata passed to
``fit`` reaches the base estimators that request it (``set_fit_request``, a
Pipeline's steps included) and the splitter of ``cv`` (``groups``, which
GroupKFold and its kin request), through scikit-learn's own
``process_routing``. skcfe consumes ``sample_weight`` itself too (the
supervised term and the factorization).

Without routing, skcfe routes by hand as scikit-learn's own estimators do:
``sample_weight`` reaches every base estimator (every Pipeline step that
accepts it), ``groups`` the splitter, and any other metadata is an error
that says to enable routing.
"""

import inspect
from numbers import Integral

from sklearn.model_selection import check_cv
from sklearn.utils import Bunch
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    get_routing_for_object,
    process_routing,
)

from ._matrix import sample_weight_params

# Router name of the splitter. It is a constructor parameter, which no base
# estimator may be named after, so it never collides with one.
SPLITTER = "cv"


def metadata_router(owner, named_estimators, cv):
    """The :class:`~sklearn.utils.metadata_routing.MetadataRouter` of ``owner.fit``.

    Parameters
    ----------
    owner : estimator
        The skcfe estimator; its own request (``sample_weight``) comes first.
    named_estimators : list of (str, estimator)
        Base estimators that ``fit`` fits ('drop' removed; none for
        ``cv='prefit'`` or ``estimators='precomputed'``).
    cv : cv object or None
        The folds' splitter; None when there are no folds.
    """
    router = MetadataRouter(owner=owner).add_self_request(owner)
    for name, est in named_estimators:
        router.add(**{name: est}, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
    if cv is not None:
        router.add(**{SPLITTER: check_cv(cv, classifier=True)},
                   method_mapping=MethodMapping().add(caller="fit", callee="split"))
    return router


def splitter_uses_groups(cv):
    """Whether the splitter of ``cv`` makes its folds from ``groups``."""
    splitter = check_cv(cv, classifier=True)
    if hasattr(splitter, "_get_metadata_request"):
        return bool(get_routing_for_object(splitter).consumes("split", ["groups"]))
    # A splitter outside scikit-learn's routing: trust its signature.
    return "groups" in inspect.signature(splitter.split).parameters


def route_fit(owner, named_estimators, *, cv, sample_weight=None, groups=None, fit_params=None):
    """Metadata of ``owner.fit`` for each base estimator and for the splitter.

    Parameters
    ----------
    owner : estimator
        The skcfe estimator, whose ``get_metadata_routing`` routes.
    named_estimators : list of (str, estimator)
        The base estimators fit fits (see :func:`metadata_router`).
    cv : cv object or None
        The folds' splitter; None when there are no folds.
    sample_weight : array-like or None
        Validated sample weights (routing disabled: every base estimator
        gets them) or the user's (routing enabled).
    groups : array-like or None
    fit_params : dict
        Any other metadata; an error unless routing is enabled.

    Returns
    -------
    routed : Bunch
        ``estimators``: fit parameters of each base estimator by name;
        ``split``: parameters of the splitter's ``split``. Both are for all
        rows; the caller indexes them to the rows it fits on.
    """
    fit_params = fit_params or {}
    caller = f"{type(owner).__name__}.fit"
    if _routing_enabled():
        metadata = {key: value for key, value in
                    {"sample_weight": sample_weight, "groups": groups, **fit_params}.items()
                    if value is not None}
        if groups is not None and not owner.get_metadata_routing().consumes("fit", ["groups"]):
            raise ValueError(_unused_groups_message(caller, cv, routing=True))
        routed = process_routing(owner, "fit", **metadata)
        return Bunch(
            estimators={name: dict(routed[name]["fit"]) for name, _ in named_estimators},
            split=dict(routed[SPLITTER]["split"]) if cv is not None else {},
        )
    _raise_for_params(fit_params, owner, "fit")
    if groups is not None and (cv is None or not splitter_uses_groups(cv)):
        raise ValueError(_unused_groups_message(caller, cv, routing=False))
    return Bunch(
        estimators={name: sample_weight_params(name, est, sample_weight)
                    for name, est in named_estimators},
        split={} if groups is None else {"groups": groups},
    )


def _unused_groups_message(caller, cv, routing):
    if cv is None:
        return (
            f"{caller} got groups, but with cv='prefit' or estimators='precomputed' no "
            "folds are made, so groups have no use here; leave them out."
        )
    # An int makes StratifiedKFold folds (y is not known here to name them).
    folds = f"cv={cv}" if isinstance(cv, Integral) else type(check_cv(cv)).__name__
    hint = (
        " (or request groups in a base estimator: set_fit_request(groups=True))"
        if routing else ""
    )
    return (
        f"{caller} got groups, but the folds of {folds} ignore them: "
        "rows of one group would land on both sides of a fold. Pass a group-aware "
        "splitter such as cv=StratifiedGroupKFold(5) or cv=GroupKFold(5)" + hint + "."
    )
