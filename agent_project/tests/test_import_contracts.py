"""The import contracts of pyproject.toml ([tool.importlinter], docs/architecture.md): every
dependency points down, agent_project.lib imports no app, no import cycle inside a package.
A new upward import fails here, with the chain that breaks the rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold():
    # In its own process: the linter reconfigures logging, which would silence the loggers of the tests after it.
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--config",
                             str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
