"""Run every benchmark in this folder and print their tables.

    .venv/bin/python benchmarks/run_all.py [NAME ...]   # e.g. 'console engine' runs only those two

The speed and memory benchmarks (``bench_*.py``) come first, then the quality benchmark
(``quality.py``, about 10-15 minutes on its own: ``run_all.py quality`` runs only that one).
"""

import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
only = sys.argv[1:]
for path in [*sorted(here.glob("bench_*.py")), here / "quality.py"]:
    name = path.stem.removeprefix("bench_")
    if only and not any(o in name for o in only):
        continue
    print(f"\n# {path.stem}\n", flush=True)
    sys.argv = [str(path)]  # each benchmark runs with its own defaults
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:  # a benchmark's main() returns its exit status
        if exc.code not in (None, 0):
            raise
