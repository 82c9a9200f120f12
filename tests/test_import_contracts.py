"""The engine's import contracts (pyproject.toml, [tool.importlinter]) hold.

Layers run one way: metadata and storage never import the services, the
notifications, the jobs, the web pages or the API, and the API never imports
the web pages. ``lint-imports`` checks every import, including those inside
functions and under TYPE_CHECKING; this test runs it with the suite and shows
that a contract does fail when a forbidden import is added.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_are_kept():
    result = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)  # as README.md shows it
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    """The same contracts over a copy of the engine whose metadata imports a service and
    whose API imports a web page: lint-imports fails and names both imports."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "engine", tmp_path / "engine",
                    ignore=shutil.ignore_patterns("__pycache__", "templates", "static"))
    model = tmp_path / "engine" / "metadata" / "durations.py"
    model.write_text(model.read_text() + "\nfrom engine.services import records  # noqa\n")
    meta = tmp_path / "engine" / "api" / "meta.py"
    meta.write_text(meta.read_text() + "\nfrom engine.web import navigation  # noqa\n")

    result = _lint(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 3 broken." in result.stdout
    assert "engine.metadata.durations -> engine.services.records (l." in result.stdout
    assert "engine.api.meta -> engine.web.navigation" in result.stdout
