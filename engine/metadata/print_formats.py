"""The print formats that packs declare in ``pack.yaml`` (``prints:``), checked.

What a print format is — which entity it prints, with which template file — is
part of the definitions, read without a database: ``crm check`` checks it and
the site reads it once when it opens.  It lives with the metadata so that the
site does not import the printing package, which renders records through the
services and sits above the site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import DefinitionError, Problem
from engine.metadata.model import Label, Registry
from engine.metadata.packs import read_pack

PRINTS_DIR = "prints"


@dataclass(frozen=True)
class PrintFormat:
    key: str
    entity: str
    label: Label
    template: str  # file name, looked up in custom/prints/, then the pack's prints/
    folder: Path | None  # the pack's prints/ folder (None: built in)
    page: str = "A4"


def declared_print_formats(registry: Registry) -> dict[str, PrintFormat]:
    """The print formats the registry's packs declare (what ``crm check`` checks, no database)."""
    formats: dict[str, PrintFormat] = {}
    problems: list[Problem] = []
    for name, info in registry.packs.items():
        source, _ = read_pack(Path(info.path))
        if source is None:
            continue
        for key, spec in (source.manifest.data.get("prints") or {}).items():
            where = ("prints", key)
            if spec["entity"] not in registry.entities:
                problems.append(source.manifest.problem(
                    (*where, "entity"), f"there is no entity '{spec['entity']}' to print"))
                continue
            folder = Path(info.path) / PRINTS_DIR
            template = Path(spec["template"]).name
            if not (folder / template).is_file():
                problems.append(source.manifest.problem(
                    (*where, "template"), f"{spec['template']} does not exist in pack '{name}'"))
                continue
            if key in formats:
                problems.append(source.manifest.problem(
                    where, f"the print format '{key}' is already declared by another pack"))
                continue
            formats[key] = PrintFormat(key=key, entity=spec["entity"],
                                       label=Label.from_yaml(spec["label"], key),
                                       template=template, folder=folder,
                                       page=spec.get("page", "A4"))
    if problems:
        raise DefinitionError(problems)
    return formats
