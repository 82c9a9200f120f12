"""Checking the shape of definition files against the JSON Schemas, in words for consultants.

The schemas in ``schemas/`` are the one description of what a definition file
may contain: editors use them for completion, the reference docs are made
from them and ``crm check`` validates with them.  jsonschema's own messages
("'strng' is not one of [...]") are written for programmers, so every error
is rewritten here into a message that says what was expected, located at
the key or value the consultant has to change, and *all* of them are
reported at once.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from engine.errors import Problem
from engine.metadata.yaml_source import SourceDocument

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_KINDS = ("pack", "site", "entity", "extend", "workflow", "extend_workflow", "roles", "transfer", "view", "dashboard",
                "reminder", "import_mapping", "installation")
COMMON_SCHEMA = "common.schema.json"

#: Top-level key of a definition file (entities/, custom/) → the kind of document it starts.
DISCRIMINATORS: dict[str, str] = {
    "entity": "entity",
    "extend": "extend",
    "workflow": "workflow",
    "extend_workflow": "extend_workflow",
    "roles": "roles",
    "transfer": "transfer",
    "view": "view",
    "dashboard": "dashboard",
    "reminder": "reminder",
}

# -- loading the schemas ----------------------------------------------------------


def _file_name(kind: str) -> str:
    return f"{kind}.schema.json"


@functools.cache
def _schemas() -> dict[str, dict]:
    """Every schema file, read once per process; never handed out (callers get copies)."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMA_DIR.glob("*.schema.json"))
    }


def load_schema(kind: str) -> dict:
    """The JSON Schema for one kind of document (a copy the caller may change)."""
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"unknown schema kind {kind!r}; known: {', '.join(SCHEMA_KINDS)}")
    return copy.deepcopy(_schemas()[_file_name(kind)])


def all_schemas() -> dict[str, dict]:
    """File name → schema, shared definitions included (for ``crm schema --out DIR``)."""
    return copy.deepcopy(_schemas())


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    schemas = _schemas()
    registry = Registry().with_resources(
        (schema["$id"], DRAFT202012.create_resource(schema)) for schema in schemas.values()
    )
    return Draft202012Validator(schemas[_file_name(kind)], registry=registry)


@functools.cache
def _fast_validator(kind: str) -> jsonschema_rs.Draft202012Validator:
    """jsonschema-rs answers "valid?" some hundred times faster than jsonschema, which
    matters at start-up with hundreds of files; only a file it rejects is validated
    again by jsonschema, whose errors carry the paths our messages are built from."""
    schemas = _schemas()
    registry = jsonschema_rs.Registry([(schema["$id"], schema) for schema in schemas.values()])
    return jsonschema_rs.Draft202012Validator(schemas[_file_name(kind)], registry=registry)


def document_kind(doc: SourceDocument) -> str | None:
    """The kind of a definition file, from its first top-level discriminator key."""
    if isinstance(doc.data, dict):
        for key in doc.data:
            if key in DISCRIMINATORS:
                return DISCRIMINATORS[key]
    return None


# -- words -------------------------------------------------------------------------

_TYPE_WORDS = {
    "object": "a mapping (key: value lines)",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}
_KEY_PATTERN = "^[a-z][a-z0-9_]*$"
_PATTERN_WORDS = {
    _KEY_PATTERN: "it must start with a lowercase letter and use only lowercase letters, "
    "digits and _",
    "^[A-Za-z0-9][A-Za-z0-9_\\-]*$": "it must start with a letter or a digit and use only "
    "letters, digits, _ and -",
    "^\\d+\\.\\d+\\.\\d+$": "it must be three whole numbers separated by dots, such as 1.0.0",
    "^[A-Z]{3}$": "it must be a three-letter code in capitals, such as CNY or USD",
    "\\{[#*]": "it must contain the counter, such as {#####} in SO-{YYYY}-{#####}",
    "^([0-9]+[wdhm])+$": "it must be numbers followed by m (minutes), h (hours), d (days) or "
    "w (weeks), such as 90m, 24h, 3d or 1d12h",
    "^([01][0-9]|2[0-4]):[0-5][0-9]$": "it must be a time of day such as 09:00 or 18:30",
    "^#([0-9a-fA-F]{3}){1,2}$": "it must be a colour such as #4caf50",
    "^[A-Za-z_][A-Za-z0-9_]*$": "it must be the name of a Python function, such as on_won",
}
_WHY_REQUIRED = {
    ("field definition", "type"): "every field needs a type",
    ("pack manifest", "name"): "every pack needs a name (the same as its folder's)",
    ("pack manifest", "version"): "every pack needs a version such as 1.0.0",
    ("pack manifest", "label"): "every pack needs a label shown to users",
    ("site settings", "name"): "the site needs a name",
    ("site settings", "packs"): "the site must list the packs it uses",
    ("entity definition", "fields"): "an entity needs at least one field",
    ("index", "fields"): "an index needs the list of fields it covers",
    (None, "en"): "a label needs at least its English text",
    ("workflow definition", "entity"): "a workflow belongs to one entity",
    ("transition", "from"): "every transition needs the stage(s) it leaves from (\"*\" for any "
    "open stage)",
    ("transition", "to"): "every transition needs the stage it leads to",
    ("pipeline", "stages"): "every pipeline needs its stages",
    ("reminder rule", "entity"): "a reminder watches the records of one entity",
    ("reminder rule", "schedule"): "a reminder needs a schedule: date, sla or stale",
    ("reminder rule", "to"): "a reminder needs its recipients, such as [owner]",
    ("reminder rule", "message"): "a reminder needs its message (a template per language)",
}
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _show(value: Any) -> str:
    """A value as a consultant would recognise it in the file."""
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _did_you_mean(word: Any, candidates: Sequence[str]) -> str:
    if not isinstance(word, str) or not candidates:
        return ""
    lowered = {c.lower(): c for c in candidates}
    near = [lowered[word.lower()]] if word.lower() in lowered else difflib.get_close_matches(
        word.lower(), list(candidates), n=1
    )
    return f" (did you mean '{near[0]}'?)" if near else ""


def _expected(schema: dict) -> str:
    if "x-expected" in schema:
        return schema["x-expected"]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return " or ".join(_TYPE_WORDS.get(k, str(k)) for k in kinds)


def _type_hint(expected: Any, value: Any, schema: dict) -> str:
    if expected == "object" and "type" in schema.get("properties", {}) and isinstance(value, str):
        return f"; to give only the type, write {{type: {value}}}"
    if expected == "string" and isinstance(value, bool | int | float):
        return "; write it in quotes so YAML keeps it as text"
    if expected == "array" and isinstance(value, str | int | float):
        return f"; write [{value}] to make a list of one"
    if expected == "boolean" and isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
        return f"; write true or false ({value!r} is only text in YAML 1.2)"
    return ""


def _key_suggestion(key: str, pattern: str) -> str:
    if pattern != _KEY_PATTERN:
        return ""
    fixed = re.sub(r"[^a-z0-9_]+", "_", key.lower()).strip("_")
    return f" (try '{fixed}')" if fixed != key and re.match(pattern, fixed) else ""


# -- one jsonschema error → problems ---------------------------------------------------


class _Converter:
    """Rewrites the errors of one document; knows its kind for the few kind-specific words."""

    def __init__(self, doc: SourceDocument, kind: str) -> None:
        self.doc = doc
        self.kind = kind

    def problems(self, error: ValidationError) -> Iterator[Problem]:
        path = tuple(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path:
            yield self._key_name(error, path)
            return
        handler = getattr(self, f"_{error.validator}", None)
        if handler is None:
            yield self.doc.problem(path, error.message)
        else:
            yield from handler(error, path)

    def _key_name(self, error: ValidationError, path: tuple) -> Problem:
        key, schema = error.instance, error.schema
        what = schema.get("title", "key")
        if error.validator == "pattern":
            words = _PATTERN_WORDS.get(schema["pattern"], f"it must match {schema['pattern']}")
            message = f"'{key}' is not a valid {what}: {words}"
            message += _key_suggestion(key, schema["pattern"])
        elif error.validator == "maxLength":
            message = (f"'{key}' is too long for a {what}: {len(key)} characters, "
                       f"at most {error.validator_value}")
        else:
            message = f"'{key}' is not a valid {what}: {error.message}"
        return self.doc.problem((*path, key), message, key=True)

    def _type(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        value = error.instance
        message = f"expected {_expected(error.schema)}, got {_show(value)}"
        hint = _type_hint(error.validator_value, value, error.schema)
        yield self.doc.problem(path, message + hint)

    def _enum(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        allowed = [str(v) for v in error.validator_value]
        message = f"expected one of: {', '.join(allowed)} — got {_show(error.instance)}"
        yield self.doc.problem(path, message + _did_you_mean(error.instance, allowed))

    def _const(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        message = f"expected {_show(error.validator_value)}, got {_show(error.instance)}"
        yield self.doc.problem(path, message)

    def _required(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        title = error.schema.get("title")
        for prop in error.validator_value:
            if isinstance(error.instance, dict) and prop not in error.instance:
                why = _WHY_REQUIRED.get((title, prop)) or _WHY_REQUIRED.get((None, prop))
                message = f"'{prop}' is missing: {why or 'it is required here'}"
                yield self.doc.problem(path, message, key=True)

    def _additionalProperties(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        allowed = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        own = next((k for k, v in DISCRIMINATORS.items() if v == self.kind), None)
        for key in error.instance:
            if key in allowed or any(re.search(p, key) for p in patterns):
                continue
            if not path and key in DISCRIMINATORS and own in error.instance:
                message = (f"'{key}:' cannot be used together with '{own}:' — a file holds "
                           "one definition; put the other in a file of its own")
            else:
                message = (f"unknown key '{key}'{_did_you_mean(key, allowed)}; "
                           f"allowed here: {', '.join(allowed)}")
            yield self.doc.problem((*path, key), message, key=True)

    def _pattern(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        pattern = error.validator_value
        what = error.schema.get("title")
        words = _PATTERN_WORDS.get(pattern, f"it must match the pattern {pattern}")
        shown = _show(error.instance)
        message = f"{shown} is not a valid {what}: {words}" if what else f"{shown}: {words}"
        if isinstance(error.instance, str):
            message += _key_suggestion(error.instance, pattern)
        yield self.doc.problem(path, message)

    def _minimum(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        yield self.doc.problem(
            path, f"must be at least {error.validator_value}, got {_show(error.instance)}")

    def _maximum(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        yield self.doc.problem(
            path, f"must be at most {error.validator_value}, got {_show(error.instance)}")

    def _minLength(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        limit = error.validator_value
        message = ("must not be empty" if limit == 1
                   else f"is too short: {len(error.instance)} characters, at least {limit}")
        yield self.doc.problem(path, message)

    def _maxLength(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        limit = error.validator_value
        message = f"is too long: {len(error.instance)} characters, at most {limit}"
        yield self.doc.problem(path, message)

    def _minItems(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        limit, count = error.validator_value, len(error.instance)
        needed = "at least one item is needed" if limit == 1 else f"at least {limit} are needed"
        if count == 0:
            message = f"the list is empty: {needed}"
        else:
            message = f"the list has {count} item(s); {needed}"
        yield self.doc.problem(path, message)

    def _uniqueItems(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        seen: list[Any] = []
        for index, item in enumerate(error.instance):
            if item in seen:
                message = (f"{_show(item)} is listed twice (first as item "
                           f"{seen.index(item) + 1}); list each only once")
                yield self.doc.problem((*path, index), message)
            else:
                seen.append(item)

    def _minProperties(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        what = error.schema.get("title", "entries")
        yield self.doc.problem(path, f"no {what} given: at least one is needed here", key=True)

    def _oneOf(self, error: ValidationError, path: tuple) -> Iterator[Problem]:
        """Report the errors of the alternative the value was meant as (its type fits)."""
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context or ():
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [
            errors for errors in branches.values()
            if not any(e.validator == "type" and not e.relative_path for e in errors)
        ]
        if len(fitting) == 1:
            for sub in fitting[0]:
                yield from self.problems(sub)
        elif not error.context:
            yield self.doc.problem(path, f"this value fits several ways: {error.message}")
        else:
            message = f"expected {_expected(error.schema)}, got {_show(error.instance)}"
            yield self.doc.problem(path, message)

    _anyOf = _oneOf


def _no_discriminator(doc: SourceDocument) -> Problem:
    keys = [f"'{k}:'" for k in DISCRIMINATORS]
    starts = keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} or {keys[-1]}"
    message = f"expected a mapping starting with {starts}"
    if not isinstance(doc.data, dict):
        return doc.problem((), f"{message}, got {_show(doc.data)}")
    for key in doc.data:
        near = difflib.get_close_matches(key.lower(), list(DISCRIMINATORS), n=1)
        if near:
            return doc.problem((key,), f"{message} (did you mean '{near[0]}:' instead of "
                               f"'{key}:'?)", key=True)
    return doc.problem((), f"{message}; this file has none of them")


def schema_problems(doc: SourceDocument, kind: str) -> list[Problem]:
    """Every way ``doc`` does not fit the schema of ``kind``, sorted by position."""
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"unknown schema kind {kind!r}; known: {', '.join(SCHEMA_KINDS)}")
    if kind in DISCRIMINATORS.values():
        if document_kind(doc) is None:
            return [_no_discriminator(doc)]
    elif not isinstance(doc.data, dict):
        expected = _expected(_schemas()[_file_name(kind)])
        return [doc.problem((), f"expected {expected}, got {_show(doc.data)}")]
    if _fast_validator(kind).is_valid(doc.data):
        return []
    converter = _Converter(doc, kind)
    found: dict[Problem, None] = {}
    for error in _validator(kind).iter_errors(doc.data):
        found.update(dict.fromkeys(converter.problems(error)))
    return sorted(found, key=lambda p: (p.line or 0, p.column or 0, p.path, p.message))
