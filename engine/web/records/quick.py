"""Quick create: the most frequent records (a visit, a follow-up) from any page.

The forms are declared in views (``quick:``), shown in the page header to
those who may create the entity, and typed in a few keystrokes (``q`` opens
the panel, see ``static/app.js``).  A save goes through the record service
like the full form — likely duplicates are shown first, as the full form
shows them — and a refused one opens the full form with the values and
the messages next to their fields, so nothing typed is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, request, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from engine.context import Actor
from engine.errors import NotFound, ValidationFailed
from engine.http.context import actor, language, login_required, site, state
from engine.metadata.entity_views import ViewRegistry
from engine.metadata.model import Entity, Field
from engine.metadata.view_defs import QuickDef
from engine.site import Site
from engine.web.i18n import translate
from engine.web.records.form_values import read_form
from engine.web.records.forms import render_form
from engine.web.records.merge import duplicate_warning
from engine.web.records.pages import bp, entity_and_views, presenter


@dataclass(frozen=True)
class QuickForm:
    entity: Entity
    quick: QuickDef

    def name(self, key: str) -> str:
        """The input name of a field in this form (distinct from the page's own form)."""
        return f"quick-{self.entity.key}-{self.quick.key}-{key}"


def quick_forms(site_: Site, me: Actor, views: ViewRegistry) -> list[QuickForm]:
    """The quick forms the actor may use (those of entities they may create)."""
    found = []
    hidden_cache: dict[str, frozenset[str]] = {}
    for entity_key, quick in views.quick_forms():
        entity = site_.registry.entities[entity_key]
        if not site_.records.policy.can(me, entity, "create"):
            continue
        hidden = hidden_cache.setdefault(entity_key, site_.records.hidden(me, entity))
        if any(k in hidden for k in quick.fields):
            continue
        if any(_looked_up(site_, me, entity.fields[k]) for k in quick.fields):
            continue  # its picker would list nothing: the look-up page offers it instead
        found.append(QuickForm(entity, quick))
    return found


def _looked_up(site_: Site, me: Actor, field: Field) -> bool:
    """A reference to records the actor only looks up (engine.web.till), never picks."""
    from engine.web.till import lookup_only

    target = site_.registry.entities.get(field.to or "") if field.type == "reference" else None
    return target is not None and lookup_only(site_, me, target)


def _safe_next(target: str) -> str | None:
    return target if target.startswith("/") and not target.startswith("//") else None


@bp.route("/quick/<entity_key>/<key>", methods=["POST"])
@login_required
def quick_create(entity_key: str, key: str) -> tuple[str, int] | Response:
    entity, views = entity_and_views(entity_key)
    quick = next((q for q in views.quick if q.key == key), None)
    if quick is None:
        raise NotFound(translate("error_404", language()))
    form = QuickForm(entity, quick)
    prefix = form.name("")
    posted = MultiDict([(k[len(prefix):], v) for k, v in request.form.items(multi=True)
                        if k.startswith(prefix)])
    values: dict[str, Any] = {**quick.values,
                              **read_form(entity, quick.fields, posted, site().config.timezone)}
    if (warning := duplicate_warning(entity, views, values)) is not None:
        return warning  # likely duplicates, as the full form shows them (engine/web/records/merge.py)
    defaults = {f.key: f.default for f in entity.fields.values() if f.default is not None}
    try:
        created = site().records.create(actor(), entity.key, values)
    except ValidationFailed as exc:
        return render_form(entity, views, {**defaults, **values}, record=None,
                           errors=exc.errors, status=422)
    title = presenter().record_title(entity, created)
    link = url_for("records.detail", entity_key=entity.key, record_id=created["id"])
    flash(Markup('{} <a href="{}">{}</a>').format(
        translate("quick_saved", language(), title=""), link, title), "success")
    return redirect(_safe_next(request.form.get("next", "")) or link)


def template_quick_forms() -> list[QuickForm]:
    """For the page header (a template global)."""
    from flask import g

    me = g.get("actor")
    if me is None:
        return []
    return quick_forms(site(), me, state().views)
