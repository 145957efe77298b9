"""Tests that need something from outside the repository (agent_project/testing/needs.py): on a machine without
it they are skipped with a reason naming what is missing, and a run that requires it (``.ci/run``) fails.

Each case runs pytest in a child process, as a new user's ``make test`` would, with the corpus or the browser
pointed at a path that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # each case says where the corpus and the browser are (or are not): nothing of this run's own choice leaks in
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("PYTEST_VERSION", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS", "LAYAN_REQUIRE_NEEDS",
                              "LAYAN_CORPUS_DIR", "LAYAN_CHROMIUM")}
    child_env.update(env)
    # its own base temp folder: a session started on the default one resets /tmp/pytest-of-<user> to mode 0700
    basetemp = tmp_path / f"child-{len(list(tmp_path.glob('child-*')))}"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                           f"--basetemp={basetemp}", *args],
                          cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=600)


CORPUS_TESTS = ["knowledge/tests/test_parsers.py", "-k", "corpus or encrypted or page_limit"]


@pytest.mark.slow
def test_without_the_corpus_the_corpus_tests_are_skipped_naming_it(tmp_path):
    missing = tmp_path / "no-such-corpus"
    run = _pytest(tmp_path, *CORPUS_TESTS, LAYAN_CORPUS_DIR=str(missing))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "error" not in run.stdout.lower()  # the module imports without the corpus (it read files.json before)
    skips = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all(f"needs the shared test corpus (real PDFs, FacQA): {missing}" in line for line in skips)
    assert " passed" not in run.stdout.splitlines()[-1]  # every selected test needed it

    required = _pytest(tmp_path, *CORPUS_TESTS, LAYAN_CORPUS_DIR=str(missing), LAYAN_REQUIRE_NEEDS="corpus")
    assert required.returncode == 1, required.stdout[-3000:]
    assert "FAILED (required need skipped) corpus:" in required.stdout


@pytest.mark.slow
def test_without_chromium_the_browser_tests_are_skipped_naming_it_and_ci_fails(tmp_path):
    browser_tests = ["conversations/tests/test_playground.py", "tools/tests/test_playground_browser.py"]
    run = _pytest(tmp_path, *browser_tests, LAYAN_CHROMIUM="/nonexistent/chromium")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "SKIPPED [2] " in run.stdout and ("needs headless Chromium driven by Playwright: /nonexistent/chromium "
                                             "is not an executable") in run.stdout, run.stdout[-3000:]

    no_path = _pytest(tmp_path, *browser_tests, PATH=os.path.dirname(sys.executable))
    assert no_path.returncode == 0 and "no chromium on PATH" in no_path.stdout, no_path.stdout[-3000:]

    required = _pytest(tmp_path, *browser_tests, LAYAN_CHROMIUM="/nonexistent/chromium", LAYAN_REQUIRE_NEEDS="all")
    assert required.returncode == 1 and "FAILED (required need skipped) browser: 2 test(s)" in required.stdout


def test_an_unknown_required_need_is_a_usage_error(tmp_path):
    run = _pytest(tmp_path, "--collect-only", "agent_project/tests/test_needs.py", LAYAN_REQUIRE_NEEDS="corpus,gpu")
    assert run.returncode == 4 and "LAYAN_REQUIRE_NEEDS names unknown needs: gpu" in run.stderr


@pytest.mark.corpus
def test_the_corpus_marker_runs_where_the_corpus_is():
    """The other side: with the corpus present (as in CI) the marked tests run."""
    from agent_project.testing import needs

    assert needs.missing("corpus") is None and (needs.corpus_dir() / "pdf" / "files.json").is_file()
