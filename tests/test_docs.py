"""The Sphinx docs build with no error or warning (needs the `docs` extra).

The build runs offline (SKCFE_DOCS_OFFLINE=1: intersphinx off, see
docs/conf.py), so it needs no network and takes a few seconds.
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(autouse=True)
def _sphinx():
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")


def test_docs_build_without_warnings(tmp_path):
    env = {**os.environ, "SKCFE_DOCS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output and "ERROR" not in output, output
    api = (tmp_path / "html" / "generated" / "skcfe.CFEnsembleClassifier.html").read_text()
    # The summary inherited from scikit-learn keeps its text, without the link.
    assert "accuracy on provided data and labels" in api


@pytest.mark.parametrize("offline", ["", "1"])
def test_intersphinx_reaches_sklearn_and_numpy_unless_offline(monkeypatch, offline):
    monkeypatch.setenv("SKCFE_DOCS_OFFLINE", offline)
    conf = runpy.run_path(str(DOCS / "conf.py"))
    assert "sphinx.ext.intersphinx" in conf["extensions"]
    mapping = conf["intersphinx_mapping"]
    if offline:
        assert mapping == {}
    else:
        assert mapping["sklearn"][0] == "https://scikit-learn.org/stable/"
        assert mapping["numpy"][0] == "https://numpy.org/doc/stable/"
