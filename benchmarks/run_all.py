"""Run every benchmark in this folder and print their tables.

    .venv/bin/python benchmarks/run_all.py [NAME ...]   # e.g. 'console engine' runs only those two
"""

import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
only = sys.argv[1:]
for path in sorted(here.glob("bench_*.py")):
    if only and not any(o in path.stem for o in only):
        continue
    print(f"\n# {path.stem}\n", flush=True)
    sys.argv = [str(path)]  # each benchmark runs with its own defaults
    runpy.run_path(str(path), run_name="__main__")
