"""Finding the Python a pack ships beside its YAML (``reports.py``, ``demo_generator.py``).

Most of a pack is declarative; the few things YAML cannot say — report
functions, a demo data generator — live in named modules in the pack's
folder.  Built-in packs are imported as ``packs.<pack>.<module>``; a pack
found in a site's own ``pack_paths`` is loaded from its file under a name
of its own, so two sites' forks of a pack never share a module by accident.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.metadata.packs import BUILTIN_PACKS_DIR

if TYPE_CHECKING:
    from engine.site import Site


def pack_module(pack: str, path: str | Path, module: str) -> ModuleType | None:
    """``<pack folder>/<module>.py`` imported, or None when the pack has no such file."""
    root = Path(path).resolve()
    if not (root / f"{module}.py").is_file():
        return None
    if root == (BUILTIN_PACKS_DIR / pack).resolve():
        return importlib.import_module(f"packs.{pack}.{module}")
    name = f"visioncrm_site_pack_{abs(hash(str(root)))}_{pack}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, root / f"{module}.py")
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        return None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def site_pack_modules(site: Site, module: str) -> dict[str, ModuleType]:
    """The enabled packs' ``module`` modules, by pack name, in the site's pack order."""
    found = {}
    for name, pack in site.registry.packs.items():
        loaded = pack_module(name, pack.path, module)
        if loaded is not None:
            found[name] = loaded
    return found


def available_reports(site: Site) -> dict[str, Callable[..., Any]]:
    """Every enabled pack's reports, as ``pack.function`` → function (for listing them).

    A pack's ``reports.py`` lists them in ``REPORTS``; without that list none
    is listed (any of its functions can still be named, see
    :class:`engine.services.reports.ReportLoader`).
    """
    found = {}
    for pack, module in site_pack_modules(site, "reports").items():
        for function in getattr(module, "REPORTS", ()):
            found[f"{pack}.{function}"] = getattr(module, function)
    return found
