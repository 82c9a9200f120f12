"""Loading ``hooks.py`` files of packs and sites, once each, without a global registry.

The record service owns one :class:`HookModules` (the workflow service
shares it), so a site's hook files are imported once per opened site and
two sites in one process never share module state by accident.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.errors import ActionFailed


class HookModules:
    """The hook files loaded so far, by resolved path."""

    def __init__(self) -> None:
        self._modules: dict[Path, ModuleType] = {}

    def module(self, file: str | Path) -> ModuleType:
        """The loaded module of ``file``; :class:`ActionFailed` when it cannot be loaded."""
        path = Path(file).resolve()
        module = self._modules.get(path)
        if module is not None:
            return module
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        spec = importlib.util.spec_from_file_location(f"crm_hooks_{digest}", path)
        if spec is None or spec.loader is None:
            raise ActionFailed(f"{path} cannot be loaded as Python.")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
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
