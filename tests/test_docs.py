"""The docs: every Python code block runs, and Sphinx builds them without warning.

The build needs the `docs` extra and runs offline (SKCFE_DOCS_OFFLINE=1:
intersphinx off, see docs/conf.py), so it needs no network and takes a few
seconds.
"""

import os
import re
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture
def _sphinx():
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")


# -- every code block runs ------------------------------------------------------

# Packages a block may need that skcfe does not: such a block is skipped without them.
OPTIONAL = {"dask", "distributed", "ray", "imblearn", "matplotlib"}

# Blocks not run here, with why (a substring of the block: the reason).
NOT_RUN = {
    "check_estimator(": "tests/test_common.py runs scikit-learn's checks on the same "
                        "estimators (minutes here)",
}


def markdown_blocks(text):
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def rst_blocks(text):
    """The literal blocks (``::``) and ``.. code-block:: python`` blocks of a reST file.

    A ``::`` block is Python when it compiles; a block that does not (a formula)
    must not look like code, so that a broken example cannot pass as prose.
    """
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(".. ") and stripped != ".. code-block:: python":
            continue
        if not (stripped.endswith("::") or stripped == ".. code-block:: python"):
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for follow in lines[i + 1:]:
            if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                break
            body.append(follow)
        code = textwrap.dedent("\n".join(body)).strip("\n")
        code = "\n".join(row for row in code.splitlines() if not row.startswith(":"))
        try:
            compile(code, "<block>", "exec")
        except SyntaxError:
            assert stripped.endswith("::") and not re.search(r"\bimport\b|\bclf\b", code), (
                f"a code block of the docs does not compile:\n{code}")
            continue
        blocks.append(code)
    return blocks


DOC_FILES = {
    "README.md": markdown_blocks,
    **{str(path.relative_to(ROOT)): rst_blocks for path in sorted(DOCS.glob("*.rst"))},
}
BLOCKS = [(name, i, code) for name, parse in DOC_FILES.items()
          for i, code in enumerate(parse((ROOT / name).read_text()))]
NAMESPACES = {}


def assumed_names():
    """The data the docs' examples take as given: X, y, a split of them, and groups."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(300, 8, weights=[0.8], random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    return {"X": X, "y": y, "X_train": X_train, "X_test": X_test, "y_train": y_train,
            "y_test": y_test, "groups": np.arange(len(y)) % 15}


@pytest.fixture(scope="module")
def _close_what_blocks_open():
    yield
    for namespace in NAMESPACES.values():
        for name in ("client", "cluster"):
            if hasattr(namespace.get(name), "close"):
                namespace[name].close()
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def test_the_docs_have_code_blocks():
    files = {name for name, _, _ in BLOCKS}
    assert {"README.md", "docs/user_guide.rst"} <= files


@pytest.mark.usefixtures("_close_what_blocks_open")
@pytest.mark.parametrize("name, index, code", BLOCKS,
                         ids=[f"{name}-{index}" for name, index, _ in BLOCKS])
def test_code_block_runs(name, index, code):
    """Each block runs in its file's namespace, after the file's earlier blocks."""
    for marker, reason in NOT_RUN.items():
        if marker in code:
            pytest.skip(reason)
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        pass
    namespace = NAMESPACES.setdefault(name, assumed_names())
    try:
        exec(compile(code, f"{name} block {index}", "exec"), namespace)  # noqa: S102
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"needs {exc.name}")
        raise


# -- the Sphinx build -------------------------------------------------------------


@pytest.mark.usefixtures("_sphinx")
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


@pytest.mark.usefixtures("_sphinx")
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
