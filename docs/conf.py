"""Sphinx configuration (needs the `docs` extra).

Build the published docs with ``sphinx-build -W -b html docs docs/_build``.
Build without network (CI, tests/test_docs.py, any offline machine) with
``SKCFE_DOCS_OFFLINE=1 sphinx-build -W -b html docs docs/_build``.

Links to scikit-learn, NumPy and Python go through intersphinx, which
downloads each project's inventory (objects.inv) when the build starts. No
installed package ships those inventories, and copies kept in this repository
would go stale with every scikit-learn release, so the published build fetches
them and an offline build switches intersphinx off instead of failing on the
download. Offline, a ``:class:`~sklearn...``` reference renders as code without
a link and without a warning (the build is not nitpicky); the only references
that would warn are the ``:ref:``/``:term:``/``:doc:`` roles pointing into
scikit-learn's own user guide from docstrings that skcfe inherits (``score``,
``set_params``, ...), so those, and only those, are reduced to their text (see
``_unlink_inherited_references``). skcfe's own docstrings are never rewritten:
a broken reference of ours still fails ``-W`` online and offline.
"""

import os
import re

import skcfe

project = "skcfe"
version = release = skcfe.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
numpydoc_show_class_members = False
# The numpydoc docstrings give every type; the annotations (for type checkers,
# py.typed) would spell numpy's ArrayLike out as a long Union in each signature.
autodoc_typehints = "none"
exclude_patterns = ["_build"]
html_theme = "alabaster"

OFFLINE = os.environ.get("SKCFE_DOCS_OFFLINE", "").lower() not in ("", "0", "false", "no")

INTERSPHINX = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}
intersphinx_mapping = {} if OFFLINE else INTERSPHINX
intersphinx_timeout = 30

# Parameter types in numpydoc sections link to Python and NumPy through
# intersphinx (numpydoc's default aliases: bool, array_like, ... plus these);
# words not listed stay plain text. Offline the links could not resolve, and
# numpydoc's :ref:/:term: aliases would warn, so the types stay plain text.
numpydoc_xref_param_type = not OFFLINE
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "Generator": "numpy.random.Generator",
    "RandomState": "numpy.random.RandomState",
}

# :ref:`text <label>` (or :ref:`label`) and the same for :term: and :doc:.
_STD_ROLE = re.compile(r":(?:ref|term|doc):`(?:([^`<]*?)\s*<[^`>]*>|([^`]*))`")


def _unlink_inherited_references(app, what, name, obj, options, lines):
    """Offline only: keep the text of std-domain roles in scikit-learn's docstrings.

    Their targets (e.g. ``accuracy_score`` in ``ClassifierMixin.score``) are
    labels in scikit-learn's documentation, which only intersphinx can resolve.
    """
    module = getattr(obj, "__module__", None) or ""
    if not OFFLINE or not module.startswith("sklearn"):
        return
    lines[:] = [_STD_ROLE.sub(lambda m: m.group(1) or m.group(2), line) for line in lines]


def setup(app):
    # Priority below numpydoc's (default 500) so the roles are gone before it
    # builds the sections; the rewrite does not depend on that order though.
    app.connect("autodoc-process-docstring", _unlink_inherited_references, priority=400)
