"""YAML definition files read into plain data that remembers where every value came from.

PyYAML's ``safe_load`` forgets positions, silently keeps the last of two
duplicate keys and applies YAML 1.1 rules that surprise people (``no`` is
``False``, ``2024-01-01`` a date).  We therefore only let PyYAML *compose*
the node tree (which keeps marks) and build the data ourselves, with YAML
1.2 scalars, so that every later check can say "file:line:column" about
the exact key or value a consultant has to change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import yaml

from engine.errors import DefinitionError, Problem

_TAG = "tag:yaml.org,2002:"
#: A file may not expand (through aliases) into more values than this.
MAX_VALUES = 200_000
#: Nor nest lists and mappings deeper than this (PyYAML composes recursively: a
#: thousand levels would end in a RecursionError that names no file and no line).
MAX_DEPTH = 64


@dataclass(frozen=True)
class SourceDocument:
    """One YAML file as plain data plus the 1-based position of each value and key."""

    file: str
    data: Any
    positions: Mapping[tuple, tuple[int, int]]
    key_positions: Mapping[tuple, tuple[int, int]]

    def locate(self, path: Sequence) -> tuple[int | None, int | None]:
        """Where the value at ``path`` starts, or its nearest known ancestor."""
        path = tuple(path)
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return None, None

    def locate_key(self, path: Sequence) -> tuple[int | None, int | None]:
        """Where the key naming ``path`` is written; falls back to :meth:`locate`."""
        found = self.key_positions.get(tuple(path))
        return found if found is not None else self.locate(path)

    def problem(
        self, path: Sequence, message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        """A Problem about the value (or with ``key=True`` the key) at ``path``."""
        line, column = self.locate_key(path) if key else self.locate(path)
        return Problem(self.file, line, column, render_path(path), message, severity)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def render_path(path: Sequence) -> str:
    """``("indexes", 0, "fields")`` → ``indexes[0].fields``; odd keys are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


# -- YAML 1.2 core schema -------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader's scanner and parser with YAML 1.2 core scalar resolution."""

    yaml_implicit_resolvers: ClassVar[dict] = {}


if hasattr(yaml, "CSafeLoader"):

    class _FastLoader(yaml.CSafeLoader):  # type: ignore[misc, valid-type]
        """libyaml's parser with the same scalar rules: for files that parse cleanly."""

        yaml_implicit_resolvers: ClassVar[dict] = {}
else:  # pragma: no cover - PyYAML without libyaml
    _FastLoader = None  # type: ignore[assignment, misc]


for _tag, _pattern, _first in [
    ("bool", r"^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^<<$", "<"),
]:
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(_pattern), list(_first))
    if _FastLoader is not None:
        _FastLoader.add_implicit_resolver(_TAG + _tag, re.compile(_pattern), list(_first))


def _fast_compose(text: str) -> yaml.Node | None:
    """Compose with libyaml when the text is one clean document; None means "use the
    pure-Python parser", whose error messages and marks the problem reports rely on."""
    if _FastLoader is None:
        return None
    loader = _FastLoader(text)
    try:
        if not loader.check_node():
            return None
        root = loader.get_node()
        return None if loader.check_node() else root
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def _int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".nan"):
        return math.nan
    if lowered.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


_SCALARS = {
    _TAG + "str": str,
    _TAG + "int": _int,
    _TAG + "float": _float,
    _TAG + "bool": lambda text: text.lower() == "true",
    _TAG + "null": lambda text: None,
}


# -- building plain data --------------------------------------------------------


def _mark(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class _Builder:
    """Turns a composed node tree into plain data, positions and problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[tuple, tuple[int, int]] = {}
        self.key_positions: dict[tuple, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._open: set[int] = set()
        self._count = 0

    def report(self, mark: yaml.Mark, path: Sequence, message: str) -> None:
        line, column = _mark(mark)
        self.problems.append(Problem(self.file, line, column, render_path(path), message))

    def build(self, node: yaml.Node, path: tuple) -> Any:
        self._count += 1
        if len(path) > MAX_DEPTH:  # only aliases get here: the text itself was measured
            self.report(node.start_mark, path, f"nested deeper than {MAX_DEPTH} levels "
                        "(through aliases)")
            return None
        if self._count > MAX_VALUES:
            if self._count == MAX_VALUES + 1:
                self.report(node.start_mark, path, f"the file expands to more than "
                            f"{MAX_VALUES} values; are aliases (*name) nested in each other?")
            return None
        self.positions[path] = _mark(node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._open:
            self.report(node.start_mark, path, "this alias refers to a value that contains it; "
                        "YAML definitions cannot be circular")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                self._expect_tag(node, path, "seq")
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            self._expect_tag(node, path, "map")
            return self._mapping(node, path)
        finally:
            self._open.discard(id(node))

    def _expect_tag(self, node: yaml.Node, path: tuple, kind: str) -> None:
        if node.tag != _TAG + kind:
            self.report(node.start_mark, path, f"the tag {node.tag!r} is not supported here; "
                        "remove it")

    def _scalar(self, node: yaml.ScalarNode, path: tuple) -> Any:
        convert = _SCALARS.get(node.tag)
        if convert is None:
            shown = node.tag.replace(_TAG, "!!")
            self.report(node.start_mark, path, f"the tag {shown} is not supported; remove it "
                        "(dates and times are written as text, e.g. \"2024-01-31\")")
            return node.value
        try:
            return convert(node.value)
        except ValueError:
            shown = node.tag.replace(_TAG, "!!")
            self.report(node.start_mark, path, f"{node.value!r} cannot be read as {shown}")
            return node.value

    def _key(self, node: yaml.Node, path: tuple) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.report(node.start_mark, path, "a key must be a plain name, not a list or a "
                        "mapping")
            return None
        if node.value == "" and node.tag == _TAG + "null":
            self.report(node.start_mark, path, "a key is missing before ':'")
            return None
        # The written text, not the converted value: `01:` stays "01", `true:` stays "true".
        return node.value

    def _pairs(self, node: yaml.MappingNode, path: tuple) -> Iterator[tuple[Any, Any, bool]]:
        """(key node, value node, explicit) with ``<<`` merges flattened, explicit first."""
        merged: list[tuple[Any, Any, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
                    value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self.report(source.start_mark, path, "'<<' merges mappings: write "
                                    "'<<: *name' where &name marks a mapping")
                    elif id(source) in self._open:
                        self.report(source.start_mark, path, "'<<' merges a mapping into "
                                    "itself; YAML definitions cannot be circular")
                    else:
                        self._open.add(id(source))
                        try:
                            merged.extend((k, v, False) for k, v, _ in self._pairs(source, path))
                        finally:
                            self._open.discard(id(source))
            else:
                yield key_node, value_node, True
        yield from merged

    def _mapping(self, node: yaml.MappingNode, path: tuple) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Mark] = {}
        for key_node, value_node, explicit in list(self._pairs(node, path)):
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in seen:
                if explicit:
                    first = seen[key].line + 1
                    self.report(key_node.start_mark, (*path, key), f"the key '{key}' appears "
                                f"twice in this mapping (first on line {first}); YAML would "
                                "silently keep only the last one — remove or rename one")
                continue
            seen[key] = key_node.start_mark
            self.key_positions[(*path, key)] = _mark(key_node.start_mark)
            result[key] = self.build(value_node, (*path, key))
        return result


# -- errors from PyYAML, in words for people --------------------------------------

_HINTS: list[tuple[str, str, bool]] = [
    # (text in PyYAML's problem, our explanation, use the context mark)
    ("mapping values are not allowed here", "mapping values are not allowed here — check the "
     "indentation or quote the value (a value containing ': ' must be in quotes)", False),
    ("found character '\\t'", "a tab character where YAML expects spaces — indent with spaces "
     "only", False),
    ("found unexpected end of stream", "a quoted value that starts here is never closed", True),
    ("could not find expected ':'", "this line is neither 'key: value' nor a list item "
     "'- ...' — is the ':' missing?", True),
    ("expected <block end>, but found '<block mapping start>'", "this line is indented "
     "differently from the lines above it — check the indentation", False),
    ("expected <block end>, but found '?'", "list items ('- ...') and 'key: value' lines are "
     "mixed at the same indentation", False),
    ("expected <block end>", "this line does not fit the structure above it — check the "
     "indentation", False),
    ("expected ',' or ']'", "the list opened with '[' here is not closed, or its items are "
     "not separated by commas", True),
    ("expected ',' or '}'", "the mapping opened with '{' here is not closed, or its entries "
     "are not separated by commas", True),
    ("that cannot start any token", "this value starts with a character YAML reserves — put "
     "the value in quotes", False),
]


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    raw = error.problem or error.context or "unknown error"
    message, mark = f"this line is not valid YAML: {raw}", error.problem_mark
    for needle, explanation, use_context in _HINTS:
        if needle in raw:
            message = f"this line is not valid YAML: {explanation}"
            if use_context and error.context_mark is not None:
                mark = error.context_mark
            break
    alias = re.match(r"found undefined alias '(.*)'", raw)
    if alias:
        name = alias.group(1)
        message = f"the alias *{name} refers to no anchor &{name} defined before it"
    anchor = re.match(r"found duplicate anchor '(.*)'", error.context or "")
    if anchor and error.context_mark is not None:
        name, first = anchor.group(1), error.context_mark.line + 1
        message = (f"the anchor &{name} is defined twice (first on line {first}); give each "
                   "anchor its own name")
    mark = mark or error.context_mark
    line, column = _mark(mark) if mark is not None else (None, None)
    return Problem(file, line, column, "", message)


def _position_of(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _reader_problem(file: str, text: str, error: yaml.reader.ReaderError) -> Problem:
    line, column = _position_of(text, error.position)
    char = error.character if isinstance(error.character, str) else chr(error.character)
    return Problem(file, line, column, "", f"the file contains the control character "
                   f"#x{ord(char):04x}, which YAML does not allow — remove it")


# -- public entry points -------------------------------------------------------


def _too_deep(file: str, text: str) -> Problem | None:
    """Where ``text`` first nests deeper than :data:`MAX_DEPTH`, read event by event.

    The event parsers keep their own stack (no recursion), so this runs
    before anything composes the file.  libyaml gives up on some deep files
    with its own error, so a file it refuses is counted again by PyYAML's
    parser; a syntax error there stops the count, and the ordinary reading
    reports it, nesting no deeper than counted so far.
    """
    for parser in (_FastLoader, _Loader):
        if parser is None:
            continue
        loader = parser(text)
        depth = 0
        try:
            while loader.check_event():
                event = loader.get_event()
                if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                    depth += 1
                    if depth > MAX_DEPTH:
                        line, column = _mark(event.start_mark)
                        return Problem(file, line, column, "",
                                       f"nested deeper than {MAX_DEPTH} levels")
                elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                    depth -= 1
            return None
        except yaml.reader.ReaderError:
            raise
        except yaml.YAMLError:
            continue
        finally:
            loader.dispose()
    return None


def load_yaml_text(text: str, display_name: str) -> SourceDocument:
    """Read one YAML document from ``text``; raise DefinitionError listing what is wrong."""
    file = display_name
    try:
        deep = _too_deep(file, text)
    except yaml.reader.ReaderError as error:
        raise DefinitionError([_reader_problem(file, text, error)]) from None
    if deep is not None:
        raise DefinitionError([deep])
    root = _fast_compose(text)
    if root is not None and not (isinstance(root, yaml.ScalarNode) and root.value == ""):
        return _document(file, root, None)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as error:
        raise DefinitionError([_reader_problem(file, text, error)]) from None
    try:
        root = loader.get_node() if loader.check_node() else None
        extra = loader.peek_event() if loader.check_node() else None
    except yaml.MarkedYAMLError as error:
        raise DefinitionError([_syntax_problem(file, error)]) from None
    except yaml.YAMLError as error:  # anything else PyYAML may raise, never let it escape
        raise DefinitionError([Problem(file, None, None, "", f"not valid YAML: {error}")]) from None
    finally:
        loader.dispose()
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _TAG + "null"
                        and root.value == ""):
        raise DefinitionError([Problem(file, 1, 1, "", "the file is empty")])
    return _document(file, root, extra)


def _document(file: str, root: yaml.Node, extra: yaml.Event | None) -> SourceDocument:
    builder = _Builder(file)
    data = builder.build(root, ())
    if extra is not None:
        line, column = _mark(extra.start_mark)
        builder.problems.append(Problem(
            file, line, column, "", "a second document starts here ('---'); a definition "
            "file holds exactly one — split it into two files or remove the '---'"))
    if builder.problems:
        raise DefinitionError(builder.problems)
    return SourceDocument(
        file=file,
        data=data,
        positions=MappingProxyType(builder.positions),
        key_positions=MappingProxyType(builder.key_positions),
    )


def load_yaml(path: Path, display_name: str | None = None) -> SourceDocument:
    """Read a YAML file (UTF-8); problems reading or parsing it raise DefinitionError."""
    file = display_name or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise DefinitionError([Problem(file, None, None, "", f"cannot read the file: "
                                       f"{reason}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise DefinitionError([Problem(
            file, line, column, "", f"the file is not valid UTF-8 (byte 0x{raw[error.start]:02x}"
            "); save it with the UTF-8 encoding")]) from None
    return load_yaml_text(text, file)
