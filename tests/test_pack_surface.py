"""Pack Python sees one engine module, the pack API (engine/pack_api.py).

The engine may reorganise its inside freely as long as the pack API keeps
its names; these tests fail the day a pack (or the scaffold a new pack starts
from) imports anything else of the engine, and keep every public name of the
API documented.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import engine.pack_api as pack_api
from engine.pack_scaffold import new_pack

ROOT = Path(__file__).resolve().parent.parent
#: The built-in packs and the tutorial's pack (docs/tutorial_pack.md).
PACK_FILES = sorted([*(ROOT / "packs").rglob("*.py"), *(ROOT / "docs" / "tutorial").rglob("*.py")])
API = "engine.pack_api"


def engine_imports(source: str, filename: str) -> list[tuple[int, str]]:
    """Every ``engine…`` module a Python source imports (at any depth), with its line."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m == "engine" or m.startswith("engine.")]
    return found


def outside_the_api(source: str, filename: str) -> list[str]:
    return [f"{filename}:{line}: imports {module}" for line, module
            in engine_imports(source, filename) if module != API]


def test_the_check_sees_every_form_of_import():
    source = ("import engine.site\nfrom engine import errors\nfrom engine.pack_api import Filter\n"
              "def f():\n    from engine.services.records.service import RecordService\n")
    assert outside_the_api(source, "x.py") == [
        "x.py:1: imports engine.site", "x.py:2: imports engine", "x.py:5: imports "
        "engine.services.records.service"]


def test_the_built_in_packs_and_the_tutorial_import_only_the_pack_api():
    assert len(PACK_FILES) > 20
    problems = [p for file in PACK_FILES for p in outside_the_api(
        file.read_text(encoding="utf-8"), str(file.relative_to(ROOT)))]
    assert problems == []


def test_a_new_pack_starts_on_the_pack_api(tmp_path):
    root = new_pack("shop", tmp_path)
    python = {str(f.relative_to(tmp_path)): f.read_text(encoding="utf-8")
              for f in root.rglob("*.py")}
    assert python, "the scaffold writes Python"
    problems = [p for name, text in python.items() for p in outside_the_api(text, name)]
    assert problems == []
    assert any(API in text for text in python.values())


@pytest.mark.parametrize("name", pack_api.__all__)
def test_every_public_name_of_the_pack_api_is_documented(name):
    value = getattr(pack_api, name)
    assert (inspect.getdoc(value) or "").strip(), f"engine.pack_api.{name} has no docstring"


def test_the_pack_api_has_no_other_public_names():
    public = {n for n, v in vars(pack_api).items()
              if not n.startswith("_") and not inspect.ismodule(v)}
    assert public - {"annotations"} == set(pack_api.__all__)
