"""Run every ``benchmarks/bench_*.py`` in turn; each prints its own table.

``make bench`` runs them all; ``make bench BENCH_ARGS=knowledge`` only those whose
name contains "knowledge". Benchmarks use their own embedded database folder
(var/pg-bench) so they never touch development data.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = argv[1:]
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not wanted or any(w in p.stem for w in wanted))
    if not scripts:
        print("no benchmark matched", wanted)
        return 1
    sys.path.insert(0, str(HERE.parent))
    os.environ.setdefault("EMBEDDED_PG_DIR", str(HERE.parent / "var" / "pg-bench"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.monotonic()
        runpy.run_path(str(script), run_name="__main__")
        print(f"({script.name} took {time.monotonic() - t0:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
