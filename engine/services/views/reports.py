"""Loading report functions from packs' ``reports.py`` (for ``report:`` dashboard widgets).

The modules load through the one pack-Python loader
(:class:`engine.metadata.pack_python.PackModules`):
the loader is owned by whoever draws dashboards (the web app's state), never
a module global, and loads each file once.  ``<pack>.<function>`` names a
function of ``packs/<pack>/reports.py``; ``site.<function>`` one of the
site's ``custom/reports.py``.  The loader checked at start-up that the
function exists; here a file that fails to import, or a function that has
gone, becomes an :class:`ActionFailed` the dashboard shows on the widget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.errors import ActionFailed
from engine.metadata.model import Registry
from engine.metadata.pack_python import PackModules
from engine.metadata.view_defs import REPORTS_FILE, SITE_REPORTS
from engine.services.views.figures import Figure, ReportRequest

Report = Callable[[ReportRequest], Figure]


class ReportLoader:
    """Finds and loads report functions; one per app, modules cached by path."""

    def __init__(self, registry: Registry, overlay_dir: Path | None = None,
                 modules: PackModules | None = None) -> None:
        self.folders: dict[str, Path] = {name: Path(p.path) for name, p in registry.packs.items()}
        if overlay_dir is not None:
            self.folders[SITE_REPORTS] = overlay_dir
        self.modules = modules or PackModules()

    def function(self, target: str) -> Report:
        """The function ``<pack>.<function>`` names."""
        pack, _, name = target.partition(".")
        folder = self.folders.get(pack)
        if folder is None or not (folder / REPORTS_FILE).is_file():
            raise ActionFailed(f"The report '{target}' cannot run: '{pack}' has no "
                               f"{REPORTS_FILE}.")
        path = (folder / REPORTS_FILE).resolve()
        function = getattr(self.modules.module(path), name, None)
        if not callable(function):
            raise ActionFailed(f"The report '{name}' is not a function of {path}.")
        return function
