"""Root pytest configuration: doctests of the package run with the test suite."""

import importlib.util

# The torch backend imports torch at module level; without torch its doctests
# cannot be collected (the backend's tests report their own skip).
collect_ignore = [] if importlib.util.find_spec("torch") else ["skcfe/backends/torch.py"]
