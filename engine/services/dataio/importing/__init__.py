"""Importing CSV and XLSX files into entities (see :mod:`.importer`)."""

from engine.services.dataio.importing.importer import Importer
from engine.services.dataio.importing.report import ImportReport, RowError

__all__ = ["ImportReport", "Importer", "RowError"]
