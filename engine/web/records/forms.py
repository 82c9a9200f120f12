"""Create and edit forms for any entity, with a widget per field type.

A form shows the input fields of the entity's form view that the actor may
see and that apply now (``visible_if`` checked on the server with the
values at hand); it posts only those, and the record service validates
everything again.  A refused save re-renders the form with the actor's
values and each message next to its field (422); a save over someone
else's newer version (409) shows their values beside the form.
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import Conflict, CrmError, PermissionDenied, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.metadata.entity_views import EntityViews
from engine.metadata.model import Entity, Field
from engine.metadata.values import ValueProblem, coerce, whole_number
from engine.services.records.choices import MAX_CHOICES, MAX_QUERY, choose
from engine.web.i18n import translate
from engine.web.presentation.display import Presenter
from engine.web.records.form_rules import conditional_keys, evaluate, typed
from engine.web.records.form_values import applies, field_errors, input_value, read_form
from engine.web.records.merge import duplicate_warning
from engine.web.records.pages import bp, entity_and_views, presenter

PICKER_OPTIONS = MAX_CHOICES
#: The button that asks a picker's search instead of saving (forms without JS).
FIND = "_find"
_PICKER_NAME = re.compile(r"^[a-z_][a-z0-9_]*(-\d{1,4}-[a-z_][a-z0-9_]*)?$")
_PRODUCT = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*\*\s*([a-z_][a-z0-9_]*)\s*$")


def candidate_keys(entity: Entity, views: EntityViews) -> list[str]:
    """Every field the form may show, whatever the values: the actor's visible inputs."""
    hidden = site().records.hidden(actor(), entity)
    keys = [k for section in views.form for k in (*section.fields, *(
        [section.lines] if section.lines else []))]
    return [k for k in keys if k not in hidden]


def form_keys(entity: Entity, views: EntityViews, values: dict[str, Any]) -> list[str]:
    """The fields this form shows and posts, in order: those whose ``visible_if`` holds."""
    now = site().clock.now()
    return [k for k in candidate_keys(entity, views) if applies(entity.fields[k], values, now)]


def readonly_keys(entity: Entity, keys: list[str], values: dict[str, Any], *,
                  editing: bool) -> set[str]:
    """Fields shown but not posted: the actor's read-only fields, and when editing
    the fields fixed once set and those the record's stage locks (a won deal's amount)."""
    readonly = set(site().records.policy.readonly_fields(actor(), entity))
    if editing:
        readonly |= {k for k in keys if entity.fields[k].readonly}
        workflow = site().records.stages.workflow(entity.key)
        if workflow is not None:
            readonly |= set(workflow.stage_of(values).readonly)
    return readonly


def _writable(entity: Entity, views: EntityViews, values: dict[str, Any], *,
              editing: bool) -> list[str]:
    keys = form_keys(entity, views, values)
    readonly = readonly_keys(entity, keys, values, editing=editing)
    return [k for k in keys if k not in readonly]


def posted_values(entity: Entity, views: EntityViews, base: dict[str, Any], *,
                  editing: bool) -> dict[str, Any]:
    """The posted values of the fields that apply given what was posted.

    Read twice: a checkbox ticked in this post (``blacklisted``) makes the
    fields that depend on it (``blacklist_reason``) apply to this save.
    """
    tz = site().config.timezone
    keys = _writable(entity, views, base, editing=editing)
    values = read_form(entity, keys, request.form, tz)
    again = _writable(entity, views, {**base, **values}, editing=editing)
    return values if again == keys else read_form(entity, again, request.form, tz)


def _picker_options(field: Field, current: Any, shown: Presenter,
                    query: str | None = None) -> list[tuple[str, str]]:
    """What a picker's plain select offers without JS: the records matching ``query`` (the
    form's own search button) or the first records by title, and the current values."""
    target = site().registry.entities.get(field.to or "")
    if target is None:
        return []
    try:
        found = choose(site().records, actor(), target.key, query, limit=PICKER_OPTIONS)
    except CrmError:
        found = None
    options = [(str(c.id), f"{c.title} · {c.detail}" if c.detail else c.title)
               for c in (found.items if found else ())]
    wanted = current if isinstance(current, list) else [current]
    for value in wanted:
        if value not in (None, "") and str(value) not in {o[0] for o in options}:
            try:
                options.insert(0, (str(int(value)), shown.reference_title(target.key, value)))
            except (TypeError, ValueError):
                continue
    return options


def picker_search() -> tuple[str, str] | None:
    """The picker whose search button posted the form (no JS), and the words to find."""
    name = request.form.get(FIND, "")
    if not _PICKER_NAME.match(name):
        return None
    return name, request.form.get(f"{name}__find", "").strip()[:MAX_QUERY]


def _line_products(field: Field) -> dict[str, list[str]]:
    """Computed line fields that are a product of two others: the editor totals them live."""
    found = {}
    for sub in field.fields.values():
        if sub.type == "computed" and sub.expression is not None:
            match = _PRODUCT.match(sub.expression.source)
            if match and match[1] in field.fields and match[2] in field.fields:
                found[sub.key] = [match[1], match[2]]
    return found


def _require(entity: Entity, action: str) -> None:
    """Refuse the form itself, not only its save, when the actor may not ``action``."""
    if not site().records.policy.can(actor(), entity, action):
        raise PermissionDenied(translate("error_403", language()))


def render_form(entity: Entity, views: EntityViews, values: dict[str, Any], *,
                record: dict[str, Any] | None, errors: dict[str, list[str]] | None = None,
                conflict: list[tuple[str, str, str]] | None = None,
                version: Any = None, status: int = 200,
                search: tuple[str, str] | None = None) -> tuple[str, int]:
    keys = form_keys(entity, views, values)
    # Fields whose visible_if does not hold now are drawn hidden: static/app.js shows them
    # as soon as /r/<entity>/rules says they apply (engine/web/records/form_rules.py).
    candidates = candidate_keys(entity, views)
    readonly = readonly_keys(entity, candidates, values, editing=record is not None)
    shown = presenter()
    tz = site().config.timezone
    inputs = {k: input_value(entity.fields[k], values.get(k), tz) for k in candidates
              if entity.fields[k].type != "lines"}
    lines = {k: [{s: input_value(entity.fields[k].fields[s], line.get(s), tz)
                  for s in entity.fields[k].fields} for line in values.get(k) or []]
             for k in candidates if entity.fields[k].type == "lines"}
    # A picker's search (the no-JS button) names its input: "customer" or "lines-2-product".
    searched, words = search or ("", "")
    wanted_key = re.sub(r"-\d+-", ".", searched)
    options = {k: _picker_options(entity.fields[k], values.get(k), shown,
                                  words if k == wanted_key else None) for k in candidates
               if entity.fields[k].type in ("reference", "many_to_many")}
    conditional = [k for k in conditional_keys(entity) if k in candidates]
    required_now = evaluate(entity, typed(entity, values))["required"] if conditional else {}
    for key in lines:
        for sub in entity.fields[key].fields.values():
            if sub.type == "reference":  # every row's product stays offered, then the search's
                chosen = [line.get(sub.key) for line in values.get(key) or []]
                options[f"{key}.{sub.key}"] = _picker_options(
                    sub, chosen, shown, words if f"{key}.{sub.key}" == wanted_key else None)
    html = render_template(
        "form.html", entity=entity, views=views, keys=keys, inputs=inputs, lines=lines,
        candidates=candidates, required_now=required_now,
        rules_url=url_for("records.form_rules", entity_key=entity.key) if conditional else None,
        options=options, readonly=readonly, record=record, errors=errors or {},
        other_errors=field_errors(errors or {}, keys), conflict=conflict,
        version=version if version is not None else (record or {}).get("version"),
        products={k: _line_products(entity.fields[k]) for k in lines}, shown=shown,
        searched=searched, search_words=words)
    return html, status


@bp.route("/r/<entity_key>/new", methods=["GET", "POST"])
@login_required
def new(entity_key: str) -> tuple[str, int] | Response:
    entity, views = entity_and_views(entity_key)
    _require(entity, "create")
    defaults = {f.key: f.default for f in entity.fields.values() if f.default is not None}
    for field in entity.fields.values():  # ?customer=3 from a related list's "new" link
        if field.type == "reference" and whole_number(request.args.get(field.key)):
            defaults[field.key] = request.args[field.key]
    if request.method == "GET":
        return render_form(entity, views, defaults, record=None)
    values = posted_values(entity, views, defaults, editing=False)
    if (search := picker_search()) is not None:
        return render_form(entity, views, {**defaults, **values}, record=None, search=search)
    if (warning := duplicate_warning(entity, views, values)) is not None:
        return warning  # likely duplicates: shown before saving (engine/web/records/merge.py)
    try:
        created = site().records.create(actor(), entity.key, values)
    except ValidationFailed as exc:
        return render_form(entity, views, {**defaults, **values}, record=None,
                           errors=exc.errors, status=422)
    flash(translate("created", language()), "success")
    return redirect(url_for("records.detail", entity_key=entity.key, record_id=created["id"]))


@bp.route("/r/<entity_key>/<int:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit(entity_key: str, record_id: int) -> tuple[str, int] | Response:
    entity, views = entity_and_views(entity_key)
    me = actor()
    record = site().records.get(me, entity.key, record_id)
    _require(entity, "update")
    if request.method == "GET":
        return render_form(entity, views, record, record=record)
    values = posted_values(entity, views, record, editing=True)
    version = request.form.get("version") or None
    if (search := picker_search()) is not None:
        return render_form(entity, views, {**record, **values}, record=record,
                           version=version, search=search)
    try:
        site().records.update(me, entity.key, record["id"], values, version=version)
    except ValidationFailed as exc:
        return render_form(entity, views, {**record, **values}, record=record,
                           errors=exc.errors, version=version, status=422)
    except Conflict as exc:
        current = exc.current or {}
        theirs = _their_values(entity, list(values), current, values)
        return render_form(entity, views, {**record, **values}, record=record,
                           conflict=theirs, version=current.get("version", version),
                           status=409)
    flash(translate("saved", language()), "success")
    return redirect(url_for("records.detail", entity_key=entity.key, record_id=record["id"]))


def _typed_one(field: Field, value: Any) -> Any:
    """A posted value typed for display (a posted reference id shows as its title)."""
    try:
        return coerce(field, value)
    except ValueProblem:
        return value


def _their_values(entity: Entity, keys: list[str], current: dict[str, Any],
                  mine: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Field, the other person's saved value and this form's, where they differ."""
    shown = presenter()
    tz = site().config.timezone
    rows = []
    for key in keys:
        field = entity.fields[key]
        if key not in current:
            continue
        if field.type == "lines":
            if len(current[key] or []) != len(mine.get(key) or []):
                rows.append((field.label.get(shown.language), str(len(current[key] or [])),
                             str(len(mine.get(key) or []))))
            continue
        if input_value(field, current[key], tz) != input_value(field, mine.get(key), tz):
            rows.append((field.label.get(shown.language), shown.value(field, current[key]),
                         shown.value(field, _typed_one(field, mine.get(key)))))
    return rows
