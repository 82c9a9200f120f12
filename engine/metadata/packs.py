"""Finding packs, reading their manifests and ordering them by dependency.

A pack is a folder with a ``pack.yaml``.  Built-in packs ship inside the
``packs`` Python package; a site may add folders of its own
(``pack_paths`` in ``crm.yaml``), searched first so a consultant can fork a
pack without touching the installation.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import packs as builtin_packs
from engine.errors import Problem
from engine.metadata.model import Label, PackInfo
from engine.metadata.schema_check import schema_problems
from engine.metadata.versions import RangeError, check_range, satisfies
from engine.metadata.yaml_source import SourceDocument, load_yaml

BUILTIN_PACKS_DIR = Path(builtin_packs.__file__).parent

#: Folders inside a pack that hold definition documents, in loading order.
DEFINITION_FOLDERS: tuple[str, ...] = ("entities", "workflows", "roles", "views", "dashboards",
                                       "reminders")
#: Definition files that may stand at a pack's top level.
ROOT_FILES: tuple[str, ...] = ("roles.yaml",)


@dataclass(frozen=True)
class PackSource:
    """A pack on disk: its checked manifest and where its files are."""

    info: PackInfo
    manifest: SourceDocument
    root: Path

    def version_range(self, index: int) -> str | None:
        """The versions dependency ``index`` must have (None: any)."""
        item = self.manifest.data.get("depends", [])[index]
        return item.get("version") if isinstance(item, dict) else None

    def definition_files(self) -> list[Path]:
        files: list[Path] = [self.root / n for n in ROOT_FILES if (self.root / n).is_file()]
        for folder in DEFINITION_FOLDERS:
            base = self.root / folder
            if base.is_dir():
                files.extend(sorted(p for p in base.glob("*.yaml") if p.is_file()))
        return files

    def display(self, path: Path) -> str:
        return f"packs/{self.info.name}/{path.relative_to(self.root).as_posix()}"


@dataclass(frozen=True)
class Requirement:
    """Where a pack was asked for, so a missing one is reported at that line."""

    name: str
    document: SourceDocument | None = None
    path: tuple = ()

    def problem(self, message: str) -> Problem:
        if self.document is None:
            return Problem("(command line)", None, None, "packs", message)
        return self.document.problem(self.path, message)


def find_pack_dirs(search_paths: Sequence[Path] = ()) -> dict[str, Path]:
    """Every pack folder visible to a site; earlier search paths win."""
    found: dict[str, Path] = {}
    for base in [*search_paths, BUILTIN_PACKS_DIR]:
        if not base.is_dir():
            continue
        for manifest in sorted(base.glob("*/pack.yaml")):
            found.setdefault(manifest.parent.name, manifest.parent)
    return found


def read_pack(root: Path) -> tuple[PackSource | None, list[Problem]]:
    display = f"packs/{root.name}/pack.yaml"
    doc = load_yaml(root / "pack.yaml", display)
    problems = schema_problems(doc, "pack")
    if problems:
        return None, problems
    data = doc.data
    if data["name"] != root.name:
        return None, [
            doc.problem(
                ("name",),
                f"the pack is named '{data['name']}' but its folder is '{root.name}'; "
                "they must be the same",
            )
        ]
    problems = _migration_problems(doc, root) + job_problems(doc, root)
    if problems:
        return None, problems
    info = PackInfo(
        name=data["name"],
        version=data["version"],
        label=Label.from_yaml(data.get("label"), data["name"]),
        depends=tuple(d if isinstance(d, str) else d["pack"] for d in data.get("depends", ())),
        path=str(root),
        description=Label.from_yaml(data["description"]) if data.get("description") else None,
    )
    return PackSource(info=info, manifest=doc, root=root), []


def job_problems(doc: SourceDocument, root: Path) -> list[Problem]:
    """Each declared job names a function of its module (parsed, never imported).

    Checked here, with the rest of the manifest, when the pack loads; the
    scheduler (engine.jobs.definitions) reads the jobs later.
    """
    from engine.metadata.pack_python import missing_function, python_functions

    problems = []
    for name, item in (doc.data.get("jobs") or {}).items():
        module = item.get("module", "jobs")
        file = root / f"{module}.py"
        shown = f"packs/{root.name}/{module}.py"
        if not file.is_file():
            problems.append(doc.problem(("jobs", name, "module" if "module" in item else
                                         "function"),
                                        f"{shown} does not exist: job '{name}' needs it"))
            continue
        functions, broken = python_functions(file)
        if broken is not None:
            problems.append(doc.problem(("jobs", name), f"{shown}:{broken.line}: "
                                        f"{broken.message}"))
        elif item["function"] not in functions:
            problems.append(doc.problem(
                ("jobs", name, "function"),
                missing_function(shown, item["function"], list(functions))))
    return problems


def _migration_problems(doc: SourceDocument, root: Path) -> list[Problem]:
    """Each declared data migration names a function of the pack's migrations.py."""
    from engine.metadata.pack_python import missing_function, python_functions

    declared = doc.data.get("migrations") or []
    if not declared:
        return []
    file = root / "migrations.py"
    shown = f"packs/{root.name}/migrations.py"
    if not file.is_file():
        return [doc.problem(("migrations",), f"{shown} does not exist: write the functions "
                                             "the migrations name in it")]
    functions, broken = python_functions(file)
    if broken is not None:
        return [doc.problem(("migrations",), f"{shown}:{broken.line}: {broken.message}")]
    return [
        doc.problem(("migrations", index, "function"),
                    missing_function(shown, item["function"], list(functions)))
        for index, item in enumerate(declared) if item["function"] not in functions
    ]


def resolve_packs(
    requested: Sequence[Requirement], search_paths: Sequence[Path] = ()
) -> tuple[list[PackSource], list[Problem]]:
    """The requested packs and everything they depend on, dependencies first.

    Problems name the line that asked for a missing pack and spell out a
    dependency cycle in full, because both are otherwise hard to find.
    """
    available = find_pack_dirs(search_paths)
    problems: list[Problem] = []
    loaded: dict[str, PackSource] = {}
    order: list[PackSource] = []
    visiting: list[str] = []

    def visit(req: Requirement) -> None:
        name = req.name
        if name in loaded:
            if name in visiting:
                cycle = " → ".join([*visiting[visiting.index(name) :], name])
                problems.append(req.problem(f"packs depend on each other in a circle: {cycle}"))
            return
        root = available.get(name)
        if root is None:
            hint = difflib.get_close_matches(name, list(available), n=1)
            did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(
                req.problem(
                    f"no pack named '{name}'{did_you_mean}; available packs: "
                    + ", ".join(sorted(available))
                )
            )
            return
        source, pack_problems = read_pack(root)
        problems.extend(pack_problems)
        if source is None:
            return
        loaded[name] = source
        visiting.append(name)
        for index, dep in enumerate(source.info.depends):
            visit(Requirement(dep, source.manifest, ("depends", index)))
            wanted = source.version_range(index)
            if wanted is not None:
                problems.extend(_version_problems(source, index, wanted, loaded.get(dep)))
        visiting.pop()
        order.append(source)

    for req in requested:
        visit(req)
    return order, problems


def _version_problems(
    source: PackSource, index: int, wanted: str, dependency: PackSource | None
) -> list[Problem]:
    """What is wrong with a version range, or with the version found for it."""
    where = ("depends", index, "version")
    try:
        check_range(wanted)
    except RangeError as exc:
        return [source.manifest.problem(where, str(exc))]
    if dependency is None or satisfies(dependency.info.version, wanted):
        return []
    return [source.manifest.problem(where, (
        f"pack '{source.info.name}' needs '{dependency.info.name}' {wanted}, but the one "
        f"found ({dependency.root}) is version {dependency.info.version}; upgrade it, or "
        "widen the range"))]


def depends_on(packs: dict[str, PackInfo], pack: str, other: str) -> bool:
    """Whether ``pack`` depends on ``other``, directly or through others."""
    seen: set[str] = set()
    stack = [pack]
    while stack:
        name = stack.pop()
        if name == other:
            return True
        if name in seen or name not in packs:
            continue
        seen.add(name)
        stack.extend(packs[name].depends)
    return False
