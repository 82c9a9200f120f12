"""Loading the Python files of packs and sites, once each, without a global registry.

Every pack module the engine runs — ``hooks.py``, ``reports.py``, scheduled
jobs, demo generators, migration steps — loads here, so one rule decides how:
a built-in pack's file is imported as the package module it is
(``packs.trading.hooks``), the one module tests and other pack modules import
too; any other file (a pack from a site's ``pack_paths``, the site's
``custom/``) is loaded from its path.  The record service owns one
:class:`HookModules` (the workflow service shares it), so a site's own files
are loaded once per opened site and two sites in one process never share their
module state by accident.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.errors import ActionFailed
from engine.metadata.packs import BUILTIN_PACKS_DIR

_BUILTIN = BUILTIN_PACKS_DIR.resolve()


def _load(path: Path) -> ModuleType:
    """A built-in pack's file as its package module; any other file from its path."""
    if path.parent.parent == _BUILTIN:
        return importlib.import_module(f"packs.{path.parent.name}.{path.stem}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    spec = importlib.util.spec_from_file_location(f"crm_hooks_{digest}", path)
    if spec is None or spec.loader is None:
        raise ActionFailed(f"{path} cannot be loaded as Python.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HookModules:
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
            raise ActionFailed(f"The hook '{name}' is not a function of {Path(file).resolve()}.")
        return function
