"""Importing CSV and XLSX files into entities (see :mod:`.importer`)."""

from engine.services.importing.importer import Importer
from engine.services.importing.report import ImportReport, RowError

__all__ = ["ImportReport", "Importer", "RowError"]
