"""Sphinx configuration: `sphinx-build -b html docs docs/_build` (needs the `docs` extra)."""

import skcfe

project = "skcfe"
version = release = skcfe.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc", "sphinx.ext.mathjax"]
autosummary_generate = True
numpydoc_show_class_members = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
