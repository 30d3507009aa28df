"""The main job, under the name the top-level README used first: see ``run.py``.

Run: python benchmarks/quickstart.py   (the same as python benchmarks/run.py)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import main  # noqa: E402

if __name__ == "__main__":
    main()
