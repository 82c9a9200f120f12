"""The look-up page: a record found by the exact keys of a role's ``lookup`` scope.

Some roles may not list, search or count an entity's records, only find one
by an exact match of every key field (a store clerk at the till and a
member's full name and number, see docs/permissions.md "Lookup").  This page
is theirs, for any entity whose lookup the roles declare — nothing here is
written for one entity:

* the form asks the key fields of the actor's declared key set;
* a match shows the record, the balance of every ledger that counts per
  record (a member's points), and the records pointing at it that the actor
  reads (purchases, movements), all through ``records.lookup`` and
  ``records.lookup_related`` with the keys just typed;
* the actions are the quick forms (``quick:`` in views) of the entities
  pointing at it: the reference is given as the same keys, never an id, so
  the service repeats the exact lookup inside the write.

Nothing is remembered between requests: every form on the card carries the
keys again (a POST body, never the URL, so they stay out of logs and
history).  A failed lookup says only "no match", whichever key was wrong.
The record service throttles lookups that find nothing, per user and across
processes (``LOOKUP_THROTTLE``: 429 after 30 in 15 minutes), so keys cannot
be guessed at speed (see docs/permissions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from sqlalchemy.sql.elements import False_
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from engine.context import Actor
from engine.errors import CrmError, LedgerRefused, NotFound, ValidationFailed
from engine.http.context import actor, language, login_required, site, state
from engine.metadata.entity_views import column_field
from engine.metadata.model import Entity, Field
from engine.metadata.view_defs import QuickDef
from engine.site import Site
from engine.web.i18n import translate
from engine.web.presentation.display import Presenter
from engine.web.records.form_values import input_value, read_form

bp = Blueprint("till", __name__)
#: Rows of each related list shown on the card (the newest first).
RELATED_ROWS = 20
#: Movements summed per request when a ledger balance is added up.
LEDGER_PAGE = 1000
PICKER_OPTIONS = 50
KEY_PREFIX = "key-"


def lookup_keys(site_: Site, me: Actor, entity: Entity) -> tuple[str, ...]:
    """The first key set the actor looks ``entity`` up by (empty: no lookup scope)."""
    declared = site_.records.policy.lookup_keys(me, entity)
    return tuple(declared[0]) if declared else ()


def lookup_only(site_: Site, me: Actor, entity: Entity) -> bool:
    """Whether the actor reaches ``entity`` by lookup and lists none of its rows."""
    if not lookup_keys(site_, me, entity):
        return False
    table = site_.schema.table(entity.key)
    return isinstance(site_.records.policy.row_filter(me, entity, table), False_)


def lookup_entities(site_: Site, me: Actor) -> list[Entity]:
    """The entities the actor may look up but not list: the sidebar's "Look up" entries."""
    return [e for e in site_.registry.entities.values()
            if site_.records.policy.can(me, e, "read") and lookup_only(site_, me, e)]


@bp.app_context_processor
def _sidebar() -> dict[str, Any]:
    def entries() -> list[Entity]:
        me = g.get("actor")
        return lookup_entities(site(), me) if me is not None else []
    return {"lookup_entries": entries}


# -- what the card shows ------------------------------------------------------------


@dataclass(frozen=True)
class Related:
    """Records of ``entity`` whose ``field`` points at the record found."""

    entity: Entity
    field: str
    columns: list[Field]
    rows: list[dict[str, Any]]
    total: int | None


@dataclass(frozen=True)
class Balance:
    entity: Entity
    quantity: Decimal


@dataclass(frozen=True)
class Action:
    """A quick form of a related entity, its reference given by the lookup keys."""

    entity: Entity
    field: str
    quick: QuickDef
    asked: tuple[str, ...]
    options: dict[str, list[tuple[str, str]]]
    defaults: dict[str, Any]

    def name(self, key: str) -> str:
        return f"{self.entity.key}-{self.quick.key}-{key}"


def _pointing(site_: Site, me: Actor, entity: Entity) -> list[tuple[Entity, str]]:
    """(entity, reference field) of every readable entity whose field points at ``entity``."""
    policy = site_.records.policy
    return [(other, f.key) for other in site_.registry.entities.values()
            if policy.can(me, other, "read")
            for f in other.fields.values()
            if f.type == "reference" and f.to == entity.key
            and f.key not in site_.records.hidden(me, other)]


def _related(site_: Site, me: Actor, entity: Entity, keys: dict[str, str]) -> list[Related]:
    found = []
    for other, field in _pointing(site_, me, entity):
        views = state().views.of(other.key)
        hidden = site_.records.hidden(me, other) | {field}
        page = site_.records.lookup_related(me, entity.key, keys, other.key, field,
                                            limit=RELATED_ROWS, with_children=False)
        columns = [column_field(other, c) for c in views.columns if c not in hidden]
        found.append(Related(other, field, columns, page.rows, page.total))
    return found


def _balances(site_: Site, me: Actor, entity: Entity, keys: dict[str, str]) -> list[Balance]:
    """Each ledger counted per record of ``entity``: the sum of its movements the actor reads."""
    found = []
    for other, field in _pointing(site_, me, entity):
        ledger = other.ledger
        if ledger is None or field not in ledger.dimensions or len(ledger.dimensions) != 1:
            continue
        total, offset = Decimal(0), 0
        while True:
            page = site_.records.lookup_related(me, entity.key, keys, other.key, field,
                                                limit=LEDGER_PAGE, offset=offset)
            total += sum((Decimal(str(r.get(ledger.quantity) or 0)) for r in page.rows),
                         Decimal(0))
            if not page.has_more:
                break
            offset += LEDGER_PAGE
        found.append(Balance(other, total))
    return found


def _options(site_: Site, me: Actor, field: Field, shown: Presenter) -> list[tuple[str, str]]:
    """The first records a reference may point at (the actor's stores, say)."""
    target = site_.registry.entities.get(field.to or "")
    if target is None or lookup_keys(site_, me, target):
        return []
    try:
        page = site_.records.list(me, target.key, limit=PICKER_OPTIONS, with_total=False)
    except CrmError:
        return []
    return [(str(r["id"]), shown.record_title(target, r)) for r in page.rows]


def _actions(site_: Site, me: Actor, entity: Entity, shown: Presenter) -> list[Action]:
    found = []
    policy = site_.records.policy
    for other, field in _pointing(site_, me, entity):
        if not policy.can(me, other, "create"):
            continue
        blocked = site_.records.hidden(me, other) | policy.readonly_fields(me, other)
        for quick in state().views.of(other.key).quick:
            asked = tuple(k for k in quick.fields if k != field)
            if field not in quick.fields or any(k in blocked for k in asked):
                continue
            options = {k: _options(site_, me, other.fields[k], shown) for k in asked
                       if other.fields[k].type == "reference"}
            defaults = {k: input_value(other.fields[k], other.fields[k].default,
                                       site_.config.timezone)
                        for k in asked if other.fields[k].default is not None}
            found.append(Action(other, field, quick, asked, options, defaults))
    return found


# -- pages --------------------------------------------------------------------------------


def _entity(entity_key: str) -> tuple[Entity, tuple[str, ...]]:
    """The entity and the keys the actor looks it up by; 404 without a lookup scope."""
    entity = site().records.entity(entity_key)
    keys = lookup_keys(site(), actor(), entity)
    if not keys or not site().records.policy.can(actor(), entity, "read"):
        raise NotFound(translate("error_404", language()))
    return entity, keys


def _typed_keys(form: MultiDict, keys: tuple[str, ...]) -> dict[str, str]:
    """The keys exactly as typed: no trimming or case folding, the match is exact."""
    return {k: form.get(KEY_PREFIX + k, "") for k in keys}


def _page(entity: Entity, keys: tuple[str, ...], typed: dict[str, str], status: int = 200,
          **extra: Any) -> tuple[str, int]:
    return render_template("till.html", entity=entity, keys=keys, typed=typed,
                           key_prefix=KEY_PREFIX, **{"record": None, **extra}), status


def _card(entity: Entity, keys: tuple[str, ...], typed: dict[str, str], status: int = 200,
          **extra: Any) -> tuple[str, int]:
    """The record found by ``typed`` with its balances, related lists and actions."""
    me, site_ = actor(), site()
    try:
        record = site_.records.lookup(me, entity.key, typed)
    except NotFound:
        return _page(entity, keys, typed, 404, failed=translate("lookup_no_match", language()))
    except ValidationFailed as exc:
        return _page(entity, keys, typed, 422, errors=exc.errors)
    shown = Presenter(site_, me, language())
    shown.preload(entity, [record])
    related = _related(site_, me, entity, typed)
    for item in related:
        shown.preload(item.entity, item.rows)
    views = state().views.of(entity.key)
    hidden = site_.records.hidden(me, entity)
    fields = [entity.fields[k] for s in views.detail for k in s.fields
              if k in entity.fields and k not in hidden and entity.fields[k].type != "lines"]
    return _page(entity, keys, typed, status, record=record, shown=shown, fields=fields,
                 balances=_balances(site_, me, entity, typed), related=related,
                 actions=_actions(site_, me, entity, shown), **extra)


@bp.route("/lookup")
@login_required
def index() -> Response | tuple[str, int]:
    """The entities the actor looks up; straight to the form when there is one."""
    found = lookup_entities(site(), actor())
    if len(found) == 1:
        return redirect(url_for("till.find", entity_key=found[0].key))
    return render_template("till.html", entity=None, choices=found, record=None), 200


@bp.route("/lookup/<entity_key>", methods=["GET", "POST"])
@login_required
def find(entity_key: str) -> tuple[str, int]:
    """GET: the key fields to fill; POST: the record they match exactly, or "no match"."""
    entity, keys = _entity(entity_key)
    if request.method == "GET":
        return _page(entity, keys, dict.fromkeys(keys, ""))
    return _card(entity, keys, _typed_keys(request.form, keys))


@bp.route("/lookup/<entity_key>/<related>/<quick_key>", methods=["POST"])
@login_required
def act(entity_key: str, related: str, quick_key: str) -> tuple[str, int]:
    """Save a quick form of a related entity for the record the posted keys find."""
    entity, keys = _entity(entity_key)
    typed = _typed_keys(request.form, keys)
    me = actor()
    shown = Presenter(site(), me, language())
    action = next((a for a in _actions(site(), me, entity, shown)
                   if a.entity.key == related and a.quick.key == quick_key), None)
    if action is None:
        raise NotFound(translate("error_404", language()))
    prefix = action.name("")
    posted = MultiDict([(k[len(prefix):], v) for k, v in request.form.items(multi=True)
                        if k.startswith(prefix)])
    values: dict[str, Any] = {**action.quick.values,
                              **read_form(action.entity, action.asked, posted,
                                          site().config.timezone),
                              action.field: dict(typed)}
    try:
        created = site().records.create(me, action.entity.key, values)
    except ValidationFailed as exc:
        errors = {k: v for k, v in exc.errors.items() if k != action.field}
        if action.field in exc.errors:  # the keys no longer match: say no more than that
            errors["record"] = [translate("lookup_no_match", language())]
        return _card(entity, keys, typed, 422, failed_action=action.quick.key,
                     action_errors=errors, posted=_shown_values(action, values))
    except LedgerRefused as exc:
        return _card(entity, keys, typed, exc.status, failed_action=action.quick.key,
                     action_errors={"record": [exc.message]},
                     posted=_shown_values(action, values))
    title = shown.record_title(action.entity, created)
    return _card(entity, keys, typed, saved=translate(
        "lookup_saved", language(), label=action.quick.label.get(language()), title=title))


def _shown_values(action: Action, values: dict[str, Any]) -> dict[str, Any]:
    """What a refused form shows again, so nothing typed is lost."""
    return {k: input_value(action.entity.fields[k], values.get(k), site().config.timezone)
            for k in action.asked}
