"""The one loader of pack Python: the ``*.py`` files of packs and of a site's ``custom/``.

A pack's YAML names functions of the Python beside it — entity hooks and
workflow ``hook:`` actions in ``hooks.py``, report widgets in
``reports.py``, scheduled jobs, data migrations.  Every such name goes
through this module twice:

- when the definitions load, :class:`FunctionFinder` reads the file with
  :mod:`ast` (never importing it, so `crm check` runs no pack code) and
  either resolves the name to the file or reports, at the YAML line that
  wrote it, what was expected::

      packs/x/workflows/y.yaml:12:9: [...] error: packs/x/hooks.py has no
      function 'foo' (did you mean 'fo'?); expected one of: bar, fo

- when the function runs, :class:`PackModules` imports the resolved file
  once: a built-in pack's file as the package module it is
  (``packs.trading.hooks``, the module its tests import too), any other file
  (a pack from ``pack_paths``, the site's ``custom/``) from its path.  The
  record service owns one, so two sites in one process never share a
  site's module by accident.

It sits with the metadata, below storage and services, so the migration
steps (storage) and the hook runners (services) load Python the same way.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.errors import ActionFailed, Problem
from engine.metadata.packs import BUILTIN_PACKS_DIR

#: The file in a pack folder (or a site's custom/ folder) that holds hook functions.
HOOKS_FILE = "hooks.py"

_BUILTIN = BUILTIN_PACKS_DIR.resolve()


def did_you_mean(name: Any, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else nothing."""
    if not isinstance(name, str):
        return ""
    near = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def python_functions(path: Path) -> tuple[dict[str, int], Problem | None]:
    """The top-level functions of a Python file (name → line), read without running it.

    A name the file imports at its top from a pack (``from packs.trading.hooks
    import post_delivery``, or a relative import) counts too: a site's
    ``custom/hooks.py`` may hand on a pack's function to a workflow it took
    over. Names imported from libraries (``from sqlalchemy import select``) do not.
    """
    display = f"{path.parent.name}/{path.name}"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return {}, Problem(display, exc.lineno, exc.offset, "", f"{path.name} does not "
                           f"parse: {exc.msg}")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, Problem(display, None, None, "", f"{path.name} cannot be read: {exc}")
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node.lineno
        elif isinstance(node, ast.ImportFrom) and _from_a_pack(node):
            found.update({a.asname or a.name: node.lineno for a in node.names if a.name != "*"})
    return found, None


def _from_a_pack(node: ast.ImportFrom) -> bool:
    return node.level > 0 or (node.module or "").split(".")[0] == "packs"


def missing_function(shown: str, name: str, functions: Sequence[str]) -> str:
    """The message for a name that is not a function of ``shown``: the near miss and the
    functions it could have named."""
    known = ", ".join(sorted(functions)) or "none"
    return f"{shown} has no function '{name}'{did_you_mean(name, functions)}; " \
        f"expected one of: {known}"


class FunctionFinder:
    """Resolves function names to the files that define them, each file parsed once."""

    def __init__(self) -> None:
        self._read: dict[Path, tuple[dict[str, int], Problem | None]] = {}

    def functions(self, file: Path) -> tuple[dict[str, int], Problem | None]:
        """The top-level functions of ``file`` (see :func:`python_functions`), cached."""
        if file not in self._read:
            self._read[file] = python_functions(file)
        return self._read[file]

    def find(self, file: Path | None, shown: str, name: str, *,
             missing_file: str) -> tuple[Path | None, str | None]:
        """``(resolved file, None)`` when ``file`` defines ``name``, else ``(None, problem)``.

        ``shown`` is how the file is named in messages (``packs/x/hooks.py``);
        ``missing_file`` is what to say when there is no such file at all.
        """
        if file is None or not file.is_file():
            return None, f"{shown} does not exist: {missing_file}"
        functions, broken = self.functions(file)
        if broken is not None:
            line = f":{broken.line}" if broken.line else ""
            return None, f"{shown}{line}: {broken.message}"
        if name not in functions:
            return None, missing_function(shown, name, list(functions))
        return file.resolve(), None


def _load(path: Path) -> ModuleType:
    """A built-in pack's file as its package module; any other file from its path."""
    if path.parent.parent == _BUILTIN:
        return importlib.import_module(f"packs.{path.parent.name}.{path.stem}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    spec = importlib.util.spec_from_file_location(f"crm_pack_{digest}", path)
    if spec is None or spec.loader is None:
        raise ActionFailed(f"{path} cannot be loaded as Python.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PackModules:
    """The pack and site Python files loaded so far, by resolved path."""

    def __init__(self) -> None:
        self._modules: dict[Path, ModuleType] = {}

    def module(self, file: str | Path) -> ModuleType:
        """The loaded module of ``file``; :class:`ActionFailed` when it cannot be loaded."""
        path = Path(file).resolve()
        module = self._modules.get(path)
        if module is not None:
            return module
        try:
            module = _load(path)
        except ActionFailed:
            raise
        except Exception as exc:
            raise ActionFailed(f"{path} could not be loaded: {exc.__class__.__name__}: "
                               f"{exc}") from exc
        self._modules[path] = module
        return module

    def function(self, file: str | Path, name: str) -> Callable[..., Any]:
        """The function ``name`` of ``file``; :class:`ActionFailed` when there is none."""
        function = getattr(self.module(file), name, None)
        if not callable(function):
            raise ActionFailed(f"The function '{name}' is not in {Path(file).resolve()}.")
        return function
