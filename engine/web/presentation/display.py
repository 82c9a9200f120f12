"""Turning stored values into the text a page shows, in the reader's language.

Referenced records are shown by their title, fetched in one query per
target entity for a whole page (never one per row), through the record
service so a reader sees only titles they may see; a reference the reader
may not see shows as its number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from engine.context import Actor
from engine.errors import CrmError
from engine.metadata.entity_views import is_money
from engine.metadata.model import Entity, Field
from engine.site import Site
from engine.storage.queries import Filter
from engine.web.i18n import translate
from engine.web.presentation import formatting


class Presenter:
    """Formats the values of one request's pages; caches titles and user names."""

    def __init__(self, site: Site, actor: Actor, language: str) -> None:
        self.site = site
        self.actor = actor
        self.language = language
        self._titles: dict[str, dict[int, str]] = defaultdict(dict)
        self._users: dict[int, str] | None = None

    # -- titles ------------------------------------------------------------------

    def record_title(self, entity: Entity, record: Mapping[str, Any]) -> str:
        if entity.title_field and record.get(entity.title_field) not in (None, ""):
            return str(record[entity.title_field])
        return f"{entity.label.get(self.language)} #{record.get('id')}"

    def preload(self, entity: Entity, rows: Iterable[Mapping[str, Any]]) -> None:
        """Fetch the titles of every record the rows reference, one query per target."""
        wanted: dict[str, set[int]] = defaultdict(set)
        for row in rows:
            for field in entity.fields.values():
                if field.type == "reference" and row.get(field.key) is not None:
                    wanted[field.to or ""].add(int(row[field.key]))
                elif field.type == "many_to_many":
                    wanted[field.to or ""].update(int(v) for v in row.get(field.key) or [])
        for target, ids in wanted.items():
            self._fetch_titles(target, ids - set(self._titles[target]))

    def _fetch_titles(self, target: str, ids: set[int]) -> None:
        if not ids or target not in self.site.registry.entities:
            return
        other = self.site.registry.entities[target]
        try:
            page = self.site.records.list(
                self.actor, target, filters=[Filter("id", "in", sorted(ids))],
                limit=len(ids), include_archived=True, with_total=False)
        except CrmError:
            return
        for row in page.rows:
            self._titles[target][row["id"]] = self.record_title(other, row)
        for missing in ids - set(self._titles[target]):
            # out of the actor's scope (or gone): shown by number, and not asked for again
            # card after card — one query per such record made a salesperson's board slow
            self._titles[target][missing] = f"#{missing}"

    def reference_title(self, target: str, record_id: Any) -> str:
        if record_id is None:
            return ""
        try:
            record_id = int(record_id)
        except (TypeError, ValueError):  # a link's "²": no record has it
            return str(record_id)
        if record_id not in self._titles[target]:
            self._fetch_titles(target, {record_id})
        return self._titles[target].get(record_id, f"#{record_id}")

    def user_name(self, user_id: Any) -> str:
        if user_id is None:
            return translate("system", self.language)
        if self._users is None:
            self._users = {u["id"]: u["display_name"] or u["login"]
                           for u in self.site.users.list()}
        return self._users.get(int(user_id), f"#{user_id}")

    # -- values ------------------------------------------------------------------

    def href(self, field: Field, value: Any) -> str | None:
        """A phone number's ``tel:`` or an e-mail's ``mailto:`` address (a tap calls or
        writes), else None."""
        if not value or not isinstance(value, str):
            return None
        if field.value_type == "phone":
            dialled = "".join(c for c in value if c.isdigit() or c in "+*#,;")
            return f"tel:{dialled}" if any(c.isdigit() for c in dialled) else None
        if field.value_type == "email" and "@" in value:
            return f"mailto:{value.strip()}"
        return None

    def value(self, field: Field, value: Any) -> str:
        """The text for one value of ``field`` (references by title, choices by label)."""
        if value is None or value == "" or value == []:
            return ""
        kind = field.value_type
        if kind == "choice":
            items = value if isinstance(value, list) else [value]
            return ", ".join(
                field.choices[v].get(self.language) if v in field.choices else str(v)
                for v in items)
        if kind == "boolean":
            return translate("yes" if value else "no", self.language)
        if kind == "reference":
            return self.reference_title(field.to or "", value)
        if kind == "user":  # the owner column of a view (engine.metadata.entity_views.SYSTEM_FIELDS)
            return self.user_name(value)
        if kind == "many_to_many":
            return ", ".join(self.reference_title(field.to or "", v) for v in value)
        if kind == "decimal":
            value = formatting.parse_decimal(value)
            if is_money(field):
                return formatting.money(value, self.site.config.currency)
            return formatting.number(value, field.scale if field.scale is not None else 2)
        if kind == "integer":
            return formatting.number(int(value))
        if kind == "date":
            return formatting.date(formatting.parse_iso(value), self.language)
        if kind == "datetime":
            return formatting.datetime(formatting.parse_iso(value), self.language,
                                       self.site.config.timezone)
        return str(value)

    def when(self, moment: Any) -> str:
        return formatting.datetime(formatting.parse_iso(moment), self.language,
                                   self.site.config.timezone)

    def duration(self, seconds: int | None) -> str:
        return formatting.duration(seconds, self.language)
