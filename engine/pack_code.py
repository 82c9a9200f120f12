"""Finding the Python a pack ships beside its YAML (``reports.py``, ``demo_generator.py``).

Most of a pack is declarative; the few things YAML cannot say — report
functions, a demo data generator — live in named modules in the pack's
folder.  They load through :class:`~engine.metadata.pack_python.PackModules`
like hooks (a built-in pack's as its package module, ``packs.core.demo_generator``;
another pack's from its file, with a loader the caller owns), so nothing about
a site is kept in module state.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.metadata.pack_python import PackModules
from engine.services.views.figures import Figure

if TYPE_CHECKING:
    from engine.site import Site


def site_pack_modules(site: Site, module: str,
                      loader: PackModules | None = None) -> dict[str, ModuleType]:
    """The enabled packs' ``<pack folder>/<module>.py``, by pack name, in the site's pack order.

    Packs without such a file are left out; a file that fails to import
    raises :class:`~engine.errors.ActionFailed` naming it.
    """
    loader = loader or PackModules()
    found = {}
    for name, pack in site.registry.packs.items():
        path = Path(pack.path) / f"{module}.py"
        if path.is_file():
            found[name] = loader.module(path)
    return found


def available_reports(site: Site) -> dict[str, Callable[..., Any]]:
    """Every enabled pack's reports, as ``pack.function`` → function (for listing them).

    A report is a public function of the pack's ``reports.py`` declared to
    return a ``Figure`` (``def pipeline(request: ReportRequest) -> Figure``);
    helpers in the same file are not offered.
    """
    found = {}
    for pack, module in site_pack_modules(site, "reports").items():
        for name, function in vars(module).items():
            if (not name.startswith("_") and inspect.isfunction(function)
                    and function.__module__ == module.__name__
                    and function.__annotations__.get("return") in ("Figure", Figure)):
                found[f"{pack}.{name}"] = function
    return found
