"""Print formats: which templates print which records, and rendering them to HTML and PDF.

A pack declares its print formats in ``pack.yaml`` (``prints:``); a site
overrides a template by placing a file of the same name in
``custom/prints/`` — like every other definition, the override survives a
pack upgrade.  Every entity can also be printed with the built-in
``record`` format (its fields and line tables).

The record is read through the record service with the actor, so a
record the actor may not see cannot be printed and hidden fields are
simply absent.  Templates run in Jinja2's sandbox: a consultant's
template can format values, not reach into the engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from engine.context import Actor
from engine.errors import ActionFailed, CrmError, NotFound
from engine.metadata.model import Entity, Field, Label
from engine.metadata.print_formats import PRINTS_DIR, PrintFormat
from engine.printing.amounts import amount_in_words
from engine.site import Site
from engine.storage.queries import Filter, Sort

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
GENERIC = "record"
_THIS_RECORD = object()  # related() without a value: records pointing at the printed one


def print_formats(site: Site) -> dict[str, PrintFormat]:
    """Every print format of the site's packs; mistakes are reported with file and line."""
    return site.print_formats


def formats_for(site: Site, entity_key: str) -> list[PrintFormat]:
    """The formats that print this entity, the generic one last."""
    found = [f for f in print_formats(site).values() if f.entity == entity_key]
    return [*found, PrintFormat(key=GENERIC, entity=entity_key,
                                label=Label(en="Record sheet", zh="记录单"),
                                template="record.html", folder=None)]


def _format(site: Site, key: str, entity_key: str | None) -> PrintFormat:
    if key == GENERIC and entity_key:
        return formats_for(site, entity_key)[-1]
    found = print_formats(site).get(key)
    if found is None or (entity_key and found.entity != entity_key):
        raise NotFound(f"There is no print format '{key}'"
                       + (f" for {entity_key}." if entity_key else "."))
    return found


class _Shown:
    """Values as a reader of the printed page expects them, in one language."""

    def __init__(self, site: Site, actor: Actor, language: str) -> None:
        self.site, self.actor, self.language = site, actor, language
        self._titles: dict[tuple[str, int], str] = {}

    def title(self, entity_key: str, record_id: Any) -> str:
        cache = (entity_key, int(record_id))
        if cache not in self._titles:
            entity = self.site.registry.entity(entity_key)
            try:
                record = self.site.records.get(self.actor, entity_key, record_id)
                self._titles[cache] = str(record.get(entity.title_field or "id") or record_id)
            except CrmError:
                self._titles[cache] = "—"
        return self._titles[cache]

    def value(self, field: Field, value: Any) -> str:
        if value is None or value == "" or value == []:
            return ""
        if field.type == "choice":
            keys = value if isinstance(value, list) else [value]
            return "、".join(field.choices[k].get(self.language) if k in field.choices else str(k)
                            for k in keys)
        if field.type == "reference":
            return self.title(field.to, value)
        if field.type == "many_to_many":
            return "、".join(self.title(field.to, v) for v in value)
        if field.type == "boolean":
            return {"en": ("Yes", "No"), "zh": ("是", "否")}[self.language][0 if value else 1]
        if isinstance(value, Decimal):
            return f"{value:,.{max(0, -value.as_tuple().exponent)}f}"
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            return moment.astimezone(ZoneInfo(self.site.config.timezone)).strftime("%Y-%m-%d %H:%M")
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)


def _environment(site: Site, fmt: PrintFormat) -> SandboxedEnvironment:
    folders = [site.config.overlay_dir / PRINTS_DIR]
    if fmt.folder is not None:
        folders.append(fmt.folder)
    folders.append(BUILTIN_TEMPLATES)
    env = SandboxedEnvironment(loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
                               autoescape=True, undefined=StrictUndefined)
    env.filters["capital"] = amount_in_words
    return env


def render_html(site: Site, actor: Actor, key: str, entity_key: str, record_id: Any, *,
                language: str | None = None) -> tuple[PrintFormat, str]:
    """The document as HTML (what the preview shows and the PDF is made from)."""
    fmt = _format(site, key, entity_key)
    entity: Entity = site.registry.entity(fmt.entity)
    record = site.records.get(actor, entity.key, record_id)  # scope and hidden fields apply
    lang = language or actor.language or site.config.locale
    shown = _Shown(site, actor, lang)
    visible = [f for f in entity.fields.values()
               if f.key in record and f.type not in ("lines", "json")]
    lines = {f.key: f for f in entity.fields.values() if f.type == "lines" and f.key in record}

    def label(field_key: str, of: Mapping[str, Field] | None = None) -> str:
        fields = of if of is not None else entity.fields
        return fields[field_key].label.get(lang) if field_key in fields else field_key

    def show(field_key: str, row: Mapping[str, Any] | None = None,
             of: Mapping[str, Field] | None = None) -> str:
        fields = of if of is not None else entity.fields
        source = record if row is None else row
        return shown.value(fields[field_key], source.get(field_key)) if field_key in fields else ""

    def fetch(other_entity: str, other_id: Any) -> dict[str, Any]:
        """Another record the document mentions (the customer's phone, the project's client),
        as the actor may see it; empty when there is none or the actor may not see it."""
        if other_id is None or other_entity not in site.registry.entities:
            return {}
        try:
            return site.records.get(actor, other_entity, other_id)
        except CrmError:
            return {}

    def related(other_entity: str, field_key: str, value: Any = _THIS_RECORD, *,
                order_by: str = "id", limit: int = 500) -> list[dict[str, Any]]:
        """Records of another entity pointing at this one (a contract's payment schedule),
        or at ``value``, with their line tables, as the actor may see them; empty when
        the actor may not, or when ``value`` is empty (a field hidden from the actor)."""
        target = record["id"] if value is _THIS_RECORD else value
        if target is None or other_entity not in site.registry.entities:
            return []
        try:
            return site.records.list(actor, other_entity, filters=[Filter(field_key, "eq", target)],
                                     sort=[Sort.parse(order_by)], limit=min(limit, 1000),
                                     with_total=False, with_children=True).rows
        except CrmError:
            return []

    def fields_of(other_entity: str) -> Mapping[str, Field]:
        """Another entity's fields, for ``label``/``show`` on what ``fetch``/``related`` return."""
        return site.registry.entity(other_entity).fields if other_entity in site.registry.entities else {}

    company = {key: None for key in ("name", "address", "phone", "tax_id", "logo", "seal")}
    company.update(site.config.company)
    for image in ("logo", "seal"):
        if company.get(image):
            path = (site.config.root / company[image]).resolve()
            company[image] = path.as_uri() if path.is_file() and path.is_relative_to(
                site.config.root.resolve()) else None
    context = {
        "record": record, "entity": entity, "fields": visible, "lines": lines,
        "label": label, "show": show, "title": shown.title,
        "fetch": fetch, "related": related, "fields_of": fields_of,
        "lang": lang, "page_size": fmt.page,
        "document_title": fmt.label.get(lang),
        "entity_label": entity.label.get(lang),
        "company": {k: (Label.from_yaml(v).get(lang) if isinstance(v, dict) else v or "")
                    for k, v in company.items()},
        "currency": site.config.currency,
        "today": site.clock.now().date().isoformat(),
        "capital": amount_in_words,
    }
    try:
        html = _environment(site, fmt).get_template(fmt.template).render(context)
    except TemplateError as exc:
        raise ActionFailed(f"The print template '{fmt.template}' failed: "
                           f"{exc.__class__.__name__}: {exc}") from exc
    return fmt, html


def render_pdf(site: Site, actor: Actor, key: str, entity_key: str, record_id: Any, *,
               language: str | None = None) -> tuple[PrintFormat, bytes]:
    """The document as PDF (WeasyPrint, with the system's CJK fonts)."""
    from weasyprint import HTML

    fmt, html = render_html(site, actor, key, entity_key, record_id, language=language)
    return fmt, HTML(string=html, base_url=str(site.config.root)).write_pdf()
