"""What moves in a customer resource transfer (``transfer:`` documents).

When a salesperson leaves, their customers stay with the company: they are
handed to colleagues together with what hangs off them (contacts, open
opportunities, open activities...).  *What* hangs off a customer is a
decision of each company, so it is declared in YAML beside the roles
rather than coded, and a site overlay can change it (keep activities with
their old owner, move closed opportunities too).

It is a document of its own, not an option of entity fields, because it
changes no table: editing it never needs a schema migration, and the whole
policy reads in one place.  Each entity listed either moves the records the
user owns (a *root*, such as customer) or ``follow`` s a reference field to
another listed entity: such a record goes to whoever receives the record it
points at, so a customer's contacts never end up split from it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.expressions import Expression, ExpressionError, compile_expression
from engine.metadata.merge import Located
from engine.metadata.model import SYSTEM_COLUMNS, Entity, Origin
from engine.metadata.yaml_source import SourceDocument

#: Document kinds this module builds from.
TRANSFER_KINDS: tuple[str, ...] = ("transfer",)


@dataclass(frozen=True)
class TransferRule:
    """How the records of one entity move; ``follow`` names the reference to the parent."""

    entity: str
    follow: str | None = None
    parent: str | None = None
    when: Expression | None = None
    any_owner: bool = False
    origin: Origin | None = field(default=None, compare=False)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.follow:
            data["follow"] = self.follow
        if self.when is not None:
            data["when"] = self.when.source
        if self.any_owner:
            data["any_owner"] = True
        return data


def _near(word: str, candidates: list[str]) -> str:
    found = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean '{found[0]}'?)" if found else ""


def _collect(
    documents: list[tuple[str, SourceDocument, str]],
) -> dict[str, tuple[dict[str, Any], dict[str, Located], Located]]:
    """Entity → (merged options, where each was written, where the entity was named)."""
    merged: dict[str, tuple[dict[str, Any], dict[str, Located], Located]] = {}
    for _pack, doc, kind in documents:
        if kind not in TRANSFER_KINDS:
            continue
        for entity, spec in (doc.data.get("transfer") or {}).items():
            at = Located(doc, ("transfer", entity))
            options, places, _ = merged.get(entity, ({}, {}, at))
            for key, value in (spec or {}).items():
                options[key] = value
                places[key] = at.child(key)
            merged[entity] = (options, places, at)
    return merged


def build_transfer(
    documents: list[tuple[str, SourceDocument, str]],
    entities: Mapping[str, Entity],
    workflows: Mapping[str, Any] | None = None,
    packs: Mapping[str, Any] | None = None,
) -> tuple[dict[str, TransferRule], list[Problem]]:
    """The transfer rules, parents before the records that follow them."""
    problems: list[Problem] = []
    merged = _collect(documents)
    moving = {k for k, (options, _, _) in merged.items() if options.get("move", True)}
    rules: dict[str, TransferRule] = {}
    for key in sorted(moving):
        options, places, at = merged[key]
        entity = entities.get(key)
        if entity is None:
            problems.append(at.problem(f"there is no entity '{key}'{_near(key, list(entities))}",
                                       key=True))
            continue
        line, column = at.document.locate_key(at.path)
        rule = TransferRule(entity=key, any_owner=bool(options.get("any_owner", False)),
                            origin=Origin(at.document.file, line, column))
        ok = True
        follow = options.get("follow")
        parent = None
        if follow is not None:
            found = entity.fields.get(follow)
            refs = [f.key for f in entity.fields.values() if f.type == "reference"]
            if found is None or found.type != "reference":
                what = "not a field" if found is None else f"a {found.type} field"
                problems.append(places["follow"].problem(
                    f"follow '{follow}' is {what} of {key}; it must be a reference field to "
                    f"another entity of the transfer{_near(follow, refs)}"))
                ok = False
            elif found.to not in moving:
                problems.append(places["follow"].problem(
                    f"'{follow}' leads to {found.to}, which the transfer does not move; add "
                    f"'{found.to}:' to the transfer, or remove 'follow'"))
                ok = False
            else:
                parent = found.to
        elif rule.any_owner:
            problems.append(places["any_owner"].problem(
                "any_owner applies to records that follow another record; add 'follow'"))
        when = None
        if options.get("when") is not None:
            try:
                when = compile_expression(str(options["when"]))
            except ExpressionError as exc:
                column_note = f" at column {exc.column}" if exc.column else ""
                problems.append(places["when"].problem(
                    f"the condition does not parse{column_note}: {exc.message}"))
                ok = False
            else:
                for message in when.check_names([*entity.fields, *SYSTEM_COLUMNS]):
                    problems.append(places["when"].problem(f"the condition {message}"))
                    ok = False
        if ok:
            rules[key] = TransferRule(entity=key, follow=follow, parent=parent, when=when,
                                      any_owner=rule.any_owner, origin=rule.origin)
    return _ordered(rules, merged, problems), problems


def _ordered(
    rules: dict[str, TransferRule],
    merged: dict[str, tuple[dict[str, Any], dict[str, Located], Located]],
    problems: list[Problem],
) -> dict[str, TransferRule]:
    """Parents first; a loop of follows is reported where it closes."""
    ordered: dict[str, TransferRule] = {}
    visiting: list[str] = []

    def visit(key: str) -> bool:
        if key in ordered:
            return True
        if key in visiting:
            loop = " → ".join([*visiting[visiting.index(key):], key])
            problems.append(merged[key][1]["follow"].problem(
                f"transfer rules follow each other in a circle: {loop}"))
            return False
        rule = rules.get(key)
        if rule is None:
            return False
        visiting.append(key)
        ok = rule.parent is None or visit(rule.parent)
        visiting.pop()
        if ok:
            ordered[key] = rule
        return ok

    for key in sorted(rules):
        visit(key)
    return ordered
