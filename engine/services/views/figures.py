"""Figures: what a report hands to whoever shows it.

A report is a plain function a pack keeps in its ``reports.py``::

    def win_rate_by_owner(request: ReportRequest) -> Figure: ...

It reads through ``request.records``, ``request.ledgers`` and
``request.site.pipeline`` with ``request.actor`` — so its numbers stay inside
the actor's scope, and come from the site's read-only replica when crm.yaml
names one (``database.replica_url``) — and returns a :class:`Figure`: plain
data, with no idea of HTML or SVG.  The web dashboard draws it as a chart,
the API serves it as JSON and the CLI prints it as a table, all from the
same object, so the three can never disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from engine.context import Actor
from engine.errors import ValidationFailed
from engine.services.views.figure_text import format_value

if TYPE_CHECKING:
    from engine.services.records.ledgers import LedgerService
    from engine.services.records.service import RecordService
    from engine.services.views.site_services import SiteServices

#: How a figure is best drawn; a table shows any of them.
FigureKind = Literal["bar", "column", "funnel", "line", "table", "number"]
#: What the values measure, so they are formatted right (money in the site's currency).
FigureUnit = Literal["count", "money", "percent", "days", "hours", "number"]

Label = Mapping[str, str]


def series_key(name: Label) -> str:
    """A series' key from its English name: "Open value" → ``open_value``."""
    text = str(name.get("en") or next(iter(name.values()), "")) if name else ""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "value"


@dataclass(frozen=True)
class Series:
    """One measure: values aligned with the figure's categories, in one unit."""

    name: Label
    values: tuple[Decimal | int | None, ...]
    #: What these values measure; None: the figure's unit.
    unit: FigureUnit | None = None
    #: The key a dashboard's ``units:`` names it by; by default from its English name.
    key: str = ""
    #: Money in another currency than the site's (an ISO code); None: the site's.
    currency: str | None = None

    @property
    def name_key(self) -> str:
        return self.key or series_key(self.name)


@dataclass(frozen=True)
class Figure:
    """A titled set of series over categories (owners, stages, weeks...)."""

    title: Label
    kind: FigureKind
    unit: FigureUnit
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    #: A sentence under the figure, e.g. how it is computed.
    note: Label | None = None
    #: Optional links per category (record or list URLs' query parts), same order.
    links: tuple[str | None, ...] = ()

    def unit_of(self, series: Series) -> FigureUnit:
        """The unit of one series: its own, else the figure's."""
        return series.unit or self.unit

    def with_units(self, units: Mapping[str, str]) -> Figure:
        """The figure with the units a dashboard sets per series key (``*``: every series)."""
        if not units:
            return self
        changed = tuple(
            dataclasses.replace(s, unit=units.get(s.name_key) or units.get("*") or s.unit)
            for s in self.series)
        return dataclasses.replace(self, series=changed)

    def text(self, series: Series, value: Any, currency: str, language: str) -> str:
        """One value of ``series`` as text for a reader of ``language``."""
        return format_value(value, self.unit_of(series), series.currency or currency, language)

    def as_json(self, language: str | None = None, currency: str | None = None
                ) -> dict[str, Any]:
        """A JSON-ready form (decimals as strings, so money keeps its digits); each series
        with its unit (and currency for money), and with ``language``, its values as text."""

        def value(v: Decimal | int | None) -> Any:
            return str(v) if isinstance(v, Decimal) else v

        def one(s: Series) -> dict[str, Any]:
            unit = self.unit_of(s)
            data = {"key": s.name_key, "name": dict(s.name), "unit": unit,
                    "values": [value(v) for v in s.values]}
            if unit == "money":
                data["currency"] = s.currency or currency
            if language is not None:
                data["text"] = [self.text(s, v, currency or "CNY", language) for v in s.values]
            return data

        return {
            "title": dict(self.title),
            "kind": self.kind,
            "unit": self.unit,
            "categories": list(self.categories),
            "series": [one(s) for s in self.series],
            "note": dict(self.note) if self.note else None,
        }


@dataclass(frozen=True)
class ReportRequest:
    """Everything a report may use: the site's services, who asks, when, and options."""

    site: SiteServices
    actor: Actor
    now: dt.datetime
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> RecordService:
        """The records a report reads: the replica's when the site has one, with the same
        rights and scopes as ``site.records`` (whose writes go to the primary)."""
        return self.site.report_records

    @property
    def ledgers(self) -> LedgerService:
        """Ledger balances read like :attr:`records`."""
        return self.site.report_records.ledgers

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def int_param(self, name: str, default: int, high: int = 3650) -> int:
        """A whole-number option from 1 to ``high`` (days, weeks…); a bad one is a 422."""
        raw = self.params.get(name, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ValidationFailed({name: [f"'{raw}' is not a whole number."]}) from None
        if not 1 <= value <= high:
            raise ValidationFailed({name: [f"Give a number from 1 to {high}."]})
        return value

    def today(self) -> dt.date:
        """Today in the site's time zone (reports count days as the business does)."""
        return self.now.astimezone(ZoneInfo(self.site.config.timezone)).date()
