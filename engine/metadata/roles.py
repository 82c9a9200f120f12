"""Roles declared in YAML (``roles:`` documents): the resolved model and its checks.

A role says, per entity, which actions it allows (``rights``), which records
those actions reach (``scope``, and ``write_scope`` when changes reach fewer
records than reading) and which fields it may not see or change.  Roles are
resolved here once — wildcard entries, ``extends`` and site overlays
applied — into one :class:`Access` per role and entity, so the access policy
only looks values up at run time.

A role is *declared* by the first document that names it; a later document
(of a pack depending on the declaring pack, or a site overlay) *changes*
it: only the keys it writes are replaced.  That is how a site takes
``delete`` away from salespeople without copying the whole role.

Every problem is reported at its file and line: unknown entities and
fields, scopes that cannot apply, lookup keys that are not fields, roles
declared twice, ``extends`` loops, roles named by workflow transitions that
no document declares, and rules that would lock a role out of its own
rights (a hidden required field on an entity the role creates).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.errors import Problem
from engine.metadata.merge import SITE, Located
from engine.metadata.model import Entity, Field, Label, Origin, PackInfo
from engine.metadata.packs import depends_on
from engine.metadata.yaml_source import SourceDocument

#: Document kinds this module builds from.
ROLE_KINDS: tuple[str, ...] = ("roles",)

#: Every action a role can be given on an entity.
ACTIONS: tuple[str, ...] = ("read", "create", "update", "delete", "transition", "import", "export")
#: Actions that change existing records: they reach the ``write_scope``.
WRITE_ACTIONS: frozenset[str] = frozenset({"update", "delete", "transition"})
#: Scopes that are plain words, narrowest first (the order ``write_scope`` is checked in).
SCOPE_RANK: dict[str, int] = {"none": 0, "own": 1, "team": 2, "all": 3}
#: Scopes that never list rows: only a lookup (or the lookup of a parent) reaches them.
LOOKUP_KINDS: frozenset[str] = frozenset({"lookup", "through"})
WILDCARD = "*"
#: The one system column a field rule may name.
OWNER = "owner"


# -- the resolved model ------------------------------------------------------------------


@dataclass(frozen=True)
class ViaStep:
    """One step of a ``via`` path, resolved: from ``entity`` along ``field`` to ``target``.

    ``kind`` is ``reference``, ``many_to_many`` or ``lines``; a ``lines``
    step goes through the lines' own reference field ``line_field`` (the
    path ``team.member`` is one step: the ``member`` of any ``team`` line).
    A last step of kind ``owner`` compares the reached record's owner with
    the user instead of following the user's links.
    """

    kind: str
    entity: str
    field: str
    target: str
    line_field: str | None = None


@dataclass(frozen=True)
class Scope:
    """One way a role reaches records of an entity.

    ``kind`` is own, team, all, none, linked, via, lookup or through.
    ``path`` holds the fields of a ``via`` scope (from the entity to the
    linked one) or the one field of a ``through`` scope; ``steps`` the
    ``via`` path resolved (which field is a reference, a many-to-many or
    lines); ``keys`` the fields a ``lookup`` must match; ``target`` the
    entity the user is linked to for ``linked`` and ``via``.
    """

    kind: str
    path: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    target: str | None = None
    #: Derived from ``path`` (so two scopes with one path are equal).
    steps: tuple[ViaStep, ...] = field(default=(), compare=False)

    @property
    def lists_rows(self) -> bool:
        """Whether the scope lets lists, counts and get-by-id reach rows at all."""
        return self.kind not in LOOKUP_KINDS and self.kind != "none"

    def to_data(self) -> Any:
        if self.kind == "via":
            return {"via": ".".join(self.path)}
        if self.kind == "lookup":
            return {"lookup": list(self.keys)}
        if self.kind == "through":
            return {"through": self.path[0]}
        return self.kind


NO_SCOPE: tuple[Scope, ...] = (Scope("none"),)


@dataclass(frozen=True)
class Access:
    """What one role may do with one entity, fully resolved."""

    rights: frozenset[str] = frozenset()
    scope: tuple[Scope, ...] = NO_SCOPE
    write_scope: tuple[Scope, ...] = NO_SCOPE
    hidden: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()

    def allows(self, action: str) -> bool:
        return action in self.rights

    def scope_for(self, action: str) -> tuple[Scope, ...]:
        return self.write_scope if action in WRITE_ACTIONS else self.scope

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rights": [a for a in ACTIONS if a in self.rights],
            "scope": [s.to_data() for s in self.scope],
        }
        if self.write_scope != self.scope:
            data["write_scope"] = [s.to_data() for s in self.write_scope]
        rules = {k: "hidden" for k in self.hidden}
        rules.update({k: "readonly" for k in self.readonly if k not in self.hidden})
        if rules:
            data["fields"] = dict(sorted(rules.items()))
        return data


NO_ACCESS = Access()


@dataclass(frozen=True)
class Role:
    """A role with its access to every entity (entities it cannot reach are absent)."""

    key: str
    label: Label
    pack: str
    access: Mapping[str, Access] = field(default_factory=lambda: MappingProxyType({}))
    description: Label | None = None
    admin: bool = False
    extends: str | None = None
    changed_by: tuple[str, ...] = ()
    origin: Origin | None = field(default=None, compare=False)

    def for_entity(self, entity: str) -> Access:
        return self.access.get(entity, NO_ACCESS)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label.to_data(), "pack": self.pack}
        if self.description is not None:
            data["description"] = self.description.to_data()
        if self.admin:
            data["admin"] = True
        if self.extends:
            data["extends"] = self.extends
        data["entities"] = {k: a.to_data() for k, a in sorted(self.access.items())}
        return data


# -- reading the documents ------------------------------------------------------------------


def _near(word: str, candidates: list[str]) -> str:
    found = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean '{found[0]}'?)" if found else ""


@dataclass
class _Value:
    """A value written in a document, with where it was written."""

    value: Any
    where: Located


@dataclass
class _Declared:
    """A role as the documents write it: values per key, the last writer winning."""

    key: str
    pack: str
    where: Located
    options: dict[str, _Value] = field(default_factory=dict)
    #: entity (or '*') → access key (rights, scope, write_scope) → value
    entities: dict[str, dict[str, _Value]] = field(default_factory=dict)
    #: entity (or '*') → field → rule
    fields: dict[str, dict[str, _Value]] = field(default_factory=dict)
    changed_by: list[str] = field(default_factory=list)

    def absorb(self, data: dict[str, Any], at: Located) -> None:
        for option in ("label", "description", "admin", "extends"):
            if option in data:
                self.options[option] = _Value(data[option], at.child(option))
        for entity, spec in (data.get("entities") or {}).items():
            where = at.child("entities", entity)
            target = self.entities.setdefault(entity, {})
            target.setdefault("_declared", _Value(None, where))
            if not isinstance(spec, dict):
                continue
            for key in ("rights", "scope", "write_scope"):
                if key in spec:
                    target[key] = _Value(spec[key], where.child(key))
            rules = self.fields.setdefault(entity, {})
            for name, rule in (spec.get("fields") or {}).items():
                rules[name] = _Value(rule, where.child("fields", name))


def _declare(
    documents: list[tuple[str, SourceDocument, str]], packs: Mapping[str, PackInfo],
    problems: list[Problem],
) -> dict[str, _Declared]:
    """Every role in loading order; later documents change roles declared earlier."""
    declared: dict[str, _Declared] = {}
    for pack, doc, kind in documents:
        if kind not in ROLE_KINDS:
            continue
        for key, data in (doc.data.get("roles") or {}).items():
            at = Located(doc, ("roles", key))
            if not isinstance(data, dict):
                data = {}
            first = declared.get(key)
            if first is None:
                role = declared[key] = _Declared(key, pack, at)
                role.absorb(data, at)
                continue
            line = first.where.document.locate_key(first.where.path)[0]
            place = f"{first.where.document.file} (line {line})"
            if pack != SITE and pack == first.pack:
                problems.append(at.problem(
                    f"role '{key}' is declared twice in pack '{pack}': first in {place}; "
                    "declare each role once", key=True))
                continue
            if pack != SITE and not depends_on(dict(packs), pack, first.pack):
                problems.append(at.problem(
                    f"role '{key}' is declared by pack '{first.pack}' in {place}; pack "
                    f"'{pack}' may change it only if it depends on '{first.pack}' (add it to "
                    "'depends' in pack.yaml), or choose another role key", key=True))
                continue
            first.changed_by.append(pack)
            first.absorb(data, at)
    return declared


# -- resolving ------------------------------------------------------------------------------


class _Resolver:
    """Turns declared roles into :class:`Role` objects, reporting what cannot apply."""

    def __init__(
        self, declared: dict[str, _Declared], entities: Mapping[str, Entity],
        problems: list[Problem],
    ) -> None:
        self.declared = declared
        self.entities = entities
        self.problems = problems
        self.parents: dict[str, str | None] = {}
        self._raw_cache: dict[tuple[str, str], dict[str, _Value]] = {}
        self._reported: set[Problem] = set()

    def report(self, where: Located, message: str, *, key: bool = False,
               severity: str = "error") -> None:
        """Report once: an inherited value is resolved again for every role using it."""
        problem = where.problem(message, key=key, severity=severity)
        if problem not in self._reported:
            self._reported.add(problem)
            self.problems.append(problem)

    # -- inheritance ------------------------------------------------------------

    def check_extends(self) -> None:
        for key, role in self.declared.items():
            found = role.options.get("extends")
            parent = found.value if found else None
            if parent is not None and parent not in self.declared:
                self.report(found.where, f"role '{key}' extends an unknown role '{parent}'"
                            f"{_near(parent, list(self.declared))}")
                parent = None
            elif parent == key:
                self.report(found.where, f"role '{key}' cannot extend itself")
                parent = None
            self.parents[key] = parent
        for key in self.declared:
            seen = [key]
            current = self.parents.get(key)
            while current is not None:
                if current in seen:
                    loop = " → ".join([*seen[seen.index(current):], current])
                    if seen[0] == current:
                        where = self.declared[key].options["extends"].where
                        self.report(where, f"roles extend each other in a circle: {loop}")
                        self.parents[key] = None
                    break
                seen.append(current)
                current = self.parents.get(current)

    def chain(self, key: str) -> list[str]:
        """The role and the roles it extends, nearest first."""
        out: list[str] = []
        current: str | None = key
        while current is not None and current not in out:
            out.append(current)
            current = self.parents.get(current)
        return out

    # -- one role, one entity -----------------------------------------------------

    def raw(self, role: str, entity: str) -> dict[str, _Value]:
        """Access keys for ``entity``: the role's own entry, then '*', then the parent's."""
        cached = self._raw_cache.get((role, entity))
        if cached is not None:
            return cached
        merged: dict[str, _Value] = {}
        for name in self.chain(role):
            declared = self.declared[name]
            for source in (declared.entities.get(entity), declared.entities.get(WILDCARD)):
                for key, value in (source or {}).items():
                    if key != "_declared":
                        merged.setdefault(key, value)
        self._raw_cache[(role, entity)] = merged
        return merged

    def field_rules(self, role: str, entity: Entity) -> dict[str, _Value]:
        """Field → rule for ``entity``; the nearest declaration of a field wins."""
        rules: dict[str, _Value] = {}
        for name in reversed(self.chain(role)):
            declared = self.declared[name]
            for source in (declared.fields.get(WILDCARD), declared.fields.get(entity.key)):
                for field_key, rule in (source or {}).items():
                    if field_key in entity.fields or field_key == OWNER:
                        rules[field_key] = rule
        return rules

    def reaches(self, role: str, entity: str) -> bool:
        for name in self.chain(role):
            entries = self.declared[name].entities
            if entity in entries or WILDCARD in entries:
                return True
        return False

    def rights(self, value: _Value | None) -> frozenset[str]:
        if value is None:
            return frozenset()
        if value.value == "all":
            return frozenset(ACTIONS)
        if value.value == "none" or not isinstance(value.value, list):
            return frozenset()
        return frozenset(value.value)

    def scope(self, value: _Value | None, entity: Entity,
              default: tuple[Scope, ...]) -> tuple[Scope, ...]:
        if value is None:
            return default
        items = value.value if isinstance(value.value, list) else [value.value]
        scopes: list[Scope] = []
        for index, item in enumerate(items):
            where = value.where.child(index) if isinstance(value.value, list) else value.where
            built = self.scope_item(item, entity, where)
            if built is not None and built not in scopes:
                scopes.append(built)
        if len(scopes) > 1 and any(s.kind == "none" for s in scopes):
            scopes = [s for s in scopes if s.kind != "none"]
        return tuple(scopes) or NO_SCOPE

    def scope_item(self, item: Any, entity: Entity, where: Located) -> Scope | None:
        def fail(message: str) -> None:
            self.report(where, message)

        if isinstance(item, str):
            return Scope("linked", target=entity.key) if item == "linked" else Scope(item)
        if not isinstance(item, dict) or not item:
            return None
        if len(item) > 1:
            fail(f"write one of via, lookup or through per scope, not {' and '.join(item)}; "
                 "to combine scopes, write them as a list")
            return None
        kind, spec = next(iter(item.items()))
        if kind == "via":
            return self.via(str(spec), entity, where.child("via"), fail)
        if kind == "lookup":
            keys = tuple(spec)
            for index, key in enumerate(keys):
                found = entity.fields.get(key)
                if found is None:
                    self.report(where.child("lookup", index),
                                f"lookup key '{key}' is not a field of {entity.key}"
                                f"{_near(key, list(entity.fields))}")
                    return None
                if not found.has_column or found.type == "json":
                    self.report(where.child("lookup", index),
                                f"lookup key '{key}' is a {found.type} field; a lookup "
                                "matches fields stored in the record's own columns")
                    return None
            if not _unique_together(entity, keys):
                self.report(where.child("lookup"), f"the lookup keys {', '.join(keys)} are not "
                            f"unique together on {entity.key}: two records could match one "
                            "lookup; make one of them unique (or add a unique index)",
                            severity="warning")
            return Scope("lookup", keys=keys)
        if kind == "through":
            found = entity.fields.get(spec)
            if found is None or found.type != "reference":
                what = "not a field" if found is None else f"a {found.type} field"
                fail(f"through '{spec}' is {what} of {entity.key}; it must be the reference "
                     f"field to the parent found by a lookup{_near(spec, _refs(entity))}")
                return None
            return Scope("through", path=(spec,))
        return None

    def via(self, path: str, entity: Entity, where: Located, fail: Any) -> Scope | None:
        """Follow ``path`` through references, many-to-many fields and lines' references.

        The path ends at a record the user is linked to, or at ``owner``: the
        records whose parent (``project.owner``) the user owns.
        """
        current = entity
        parts = tuple(path.split("."))
        steps: list[ViaStep] = []
        index = 0
        while index < len(parts):
            part = parts[index]
            if part == OWNER and current.fields.get(part) is None:
                if not steps or index + 1 < len(parts):
                    fail(f"via '{path}': 'owner' ends a path after a reference "
                         "('project.owner': the records whose project the user owns); "
                         "for the user's own records write the scope own")
                    return None
                steps.append(ViaStep("owner", current.key, OWNER, current.key))
                return Scope("via", path=parts, steps=tuple(steps))
            found = current.fields.get(part)
            line_field = None
            if found is not None and found.type == "lines":
                if index + 1 == len(parts):
                    fail(f"via '{path}': '{part}' is a lines field of {current.key}; name the "
                         f"reference inside its lines after it ('{part}.<field>')")
                    return None
                index += 1
                line_field = parts[index]
                inner = found.fields.get(line_field)
                if inner is None or inner.type != "reference":
                    what = ("no field" if inner is None
                            else f"a {inner.type} field, not a reference")
                    fail(f"via '{path}': '{line_field}' is {what} of the {part} lines of "
                         f"{current.key}{_near(line_field, _refs(found))}")
                    return None
                target_key = inner.to or ""
            elif found is None or found.type not in ("reference", "many_to_many"):
                what = "no field" if found is None else f"a {found.type} field, not a reference"
                fail(f"via '{path}': '{part}' is {what} of {current.key}"
                     f"{_near(part, _refs(current, via=True))}; via follows reference, "
                     "many-to-many and lines fields to the record a user is linked to")
                return None
            else:
                target_key = found.to or ""
            target = self.entities.get(target_key)
            if target is None:
                return None
            steps.append(ViaStep(found.type, current.key, part, target.key, line_field))
            current = target
            index += 1
        return Scope("via", path=parts, target=current.key, steps=tuple(steps))

    def access(self, role: str, entity: Entity) -> Access:
        raw = self.raw(role, entity.key)
        rights = self.rights(raw.get("rights"))
        scope = self.scope(raw.get("scope"), entity, (Scope("own"),))
        write_scope = self.scope(raw.get("write_scope"), entity, scope)
        if "write_scope" in raw:
            self.check_write_scope(scope, write_scope, raw["write_scope"])
        hidden: set[str] = set()
        readonly: set[str] = set()
        for field_key, rule in self.field_rules(role, entity).items():
            if rule.value == "hidden":
                hidden.add(field_key)
            elif rule.value == "readonly":
                readonly.add(field_key)
        return Access(rights=rights, scope=scope, write_scope=write_scope,
                      hidden=frozenset(hidden), readonly=frozenset(readonly))

    def check_write_scope(self, read: tuple[Scope, ...], write: tuple[Scope, ...],
                          value: _Value) -> None:
        if len(read) != 1 or len(write) != 1:
            return
        r, w = read[0].kind, write[0].kind
        if r in SCOPE_RANK and w in SCOPE_RANK and SCOPE_RANK[w] > SCOPE_RANK[r]:
            self.report(value.where, f"write_scope '{w}' reaches records the role cannot read "
                        f"(its scope is '{r}'); a role changes at most what it reads")

    # -- checks over the declarations ---------------------------------------------

    def check_entities(self) -> None:
        """Entity keys, wildcard limits and field names, at the place each is written."""
        names = list(self.entities)
        all_fields = {f for e in self.entities.values() for f in e.fields}
        for role in self.declared.values():
            for entity_key, entry in role.entities.items():
                declared = entry["_declared"].where
                if entity_key != WILDCARD and entity_key not in self.entities:
                    self.report(declared, f"role '{role.key}' names an unknown entity "
                                f"'{entity_key}'{_near(entity_key, names)}", key=True)
                    continue
                if entity_key == WILDCARD:
                    for key in ("scope", "write_scope"):
                        self.check_wildcard_scope(entry.get(key))
                for field_key, rule in role.fields.get(entity_key, {}).items():
                    self.check_field_rule(role, entity_key, field_key, rule, all_fields)

    def check_wildcard_scope(self, value: _Value | None) -> None:
        if value is None:
            return
        items = value.value if isinstance(value.value, list) else [value.value]
        for item in items:
            if not isinstance(item, str) or item == "linked":
                self.report(value.where, "'*' applies to every entity, so its scope can only be "
                            "own, team, all or none; write linked, via, lookup and through "
                            "under the entity they apply to")
                return

    def check_field_rule(self, role: _Declared, entity_key: str, field_key: str,
                         rule: _Value, all_fields: set[str]) -> None:
        if field_key == OWNER:
            if rule.value == "hidden":
                self.report(rule.where, "'owner' can be readonly, not hidden: the owner decides "
                            "who reaches a record")
            return
        if entity_key == WILDCARD:
            if field_key not in all_fields:
                self.report(rule.where, f"no entity has a field '{field_key}'"
                            f"{_near(field_key, sorted(all_fields))}", key=True)
            return
        entity = self.entities[entity_key]
        if field_key not in entity.fields:
            self.report(rule.where, f"'{field_key}' is not a field of {entity_key}"
                        f"{_near(field_key, list(entity.fields))}", key=True)

    def check_access(self, role: str, entity: Entity, access: Access) -> None:
        """Rules that would keep a role from using its own rights."""
        declared = self.declared[role]
        where = declared.where
        entry = declared.entities.get(entity.key) or declared.entities.get(WILDCARD)
        if entry is not None:
            where = entry.get("rights", entry["_declared"]).where
        for scope in access.scope:
            if scope.kind == "lookup":
                for key in scope.keys:
                    if key in access.hidden:
                        self.report(where, f"role '{role}' looks {entity.key} records up by "
                                    f"'{key}' but the field is hidden from it")
        if access.allows("create"):
            for key in sorted(access.hidden | access.readonly):
                found = entity.fields.get(key)
                if found is None or not found.is_input or not found.required:
                    continue
                if found.default is None and found.default_expression is None:
                    rule = "hidden" if key in access.hidden else "readonly"
                    self.report(where, f"role '{role}' may create {entity.key} records but "
                                f"'{key}' is required and {rule} for it, so it could never "
                                "save one; give the field a default or let the role set it")

    def build(self) -> dict[str, Role]:
        self.check_extends()
        self.check_entities()
        roles: dict[str, Role] = {}
        for key, declared in self.declared.items():
            access: dict[str, Access] = {}
            for entity in self.entities.values():
                if not self.reaches(key, entity.key):
                    continue
                built = self.access(key, entity)
                self.check_access(key, entity, built)
                if built.rights:
                    access[entity.key] = built
            options = declared.options
            label = options.get("label")
            description = options.get("description")
            line, column = declared.where.document.locate_key(declared.where.path)
            roles[key] = Role(
                key=key,
                label=Label.from_yaml(label.value if label else None, Label.from_key(key).en),
                pack=declared.pack,
                access=MappingProxyType(access),
                description=Label.from_yaml(description.value) if description else None,
                admin=bool(options["admin"].value) if "admin" in options else False,
                extends=self.parents.get(key),
                changed_by=tuple(declared.changed_by),
                origin=Origin(declared.where.document.file, line, column, declared.pack),
            )
        return roles


def _refs(entity: Entity | Field, *, via: bool = False) -> list[str]:
    """Fields a ``through`` (references) or a ``via`` (also many-to-many, lines) may follow."""
    kinds = ("reference", "many_to_many", "lines") if via else ("reference",)
    return [f.key for f in entity.fields.values() if f.type in kinds]


def _unique_together(entity: Entity, keys: tuple[str, ...]) -> bool:
    """Whether the keys cannot match two records (one is unique, or an index covers them)."""
    if any(entity.fields[k].unique or entity.fields[k].type == "sequence" for k in keys):
        return True
    return any(index.unique and set(index.fields) <= set(keys) for index in entity.indexes)


def _workflow_roles(workflows: Mapping[str, Any]) -> Iterator[tuple[str, Located | None]]:
    """Roles named by stage flows, with where (read defensively: flows evolve separately)."""
    for workflow in workflows.values():
        references = getattr(workflow, "role_references", None)
        if callable(references):
            yield from references()
            continue
        for transition in getattr(workflow, "transitions", lambda: ())():
            for role in getattr(transition, "roles", ()):
                yield role, None


def build_roles(
    documents: list[tuple[str, Any, str]],
    entities: dict[str, Any],
    workflows: dict[str, Any],
    packs: dict[str, Any],
) -> tuple[dict[str, Role], list[Problem]]:
    """Resolve every ``roles:`` document against the built entities and workflows."""
    problems: list[Problem] = []
    declared = _declare(documents, packs, problems)
    roles = _Resolver(declared, entities, problems).build() if declared else {}
    for role, where in _workflow_roles(workflows):
        if role in roles:
            continue
        message = (f"no role '{role}' is declared{_near(role, list(roles))}; declare it in a "
                   "roles: document" + ("" if roles else " (no roles are declared at all)"))
        if where is None:
            problems.append(Problem("(workflows)", None, None, "roles", message))
        else:
            problems.append(where.problem(message))
    return roles, problems
