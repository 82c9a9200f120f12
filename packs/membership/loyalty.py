"""The loyalty rules (loyalty.yaml) and the arithmetic of points and tiers.

The rules are data a consultant edits — points per amount, tier multipliers,
promotion periods, excluded categories, expiry, tier thresholds — so they
live in YAML beside the pack. This module reads and checks them (every
problem names the file and key) and computes from them; it reads and writes
no records (hooks.py and jobs.py do).

Points of a purchase::

    eligible = Σ amounts of lines whose category is not excluded
               (a purchase without lines: its amount)
    points   = floor( floor(eligible / per_amount) × tier multiplier × promotion multiplier )

The tier multiplier is that of the member's tier before the purchase; the
promotion is the one whose [from, to] holds the purchase date (the highest
multiplier if several do).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from engine.pack_api import DefinitionError, Problem

PACK_FILE = Path(__file__).with_name("loyalty.yaml")


@dataclass(frozen=True)
class Promotion:
    name: Mapping[str, str]
    start: dt.date
    end: dt.date
    multiplier: Decimal


@dataclass(frozen=True)
class LoyaltyRules:
    per_amount: Decimal
    tier_multipliers: Mapping[str, Decimal]
    excluded_categories: frozenset[str]
    promotions: tuple[Promotion, ...]
    expire_after_months: int
    tier_order: tuple[str, ...]
    thresholds: Mapping[str, Decimal]
    renewal_months: int

    # -- points --------------------------------------------------------------

    def eligible(self, lines: Iterable[Mapping[str, Any]], amount: Any) -> Decimal:
        """The spend that earns points: lines outside the excluded categories."""
        rows = list(lines or [])
        if not rows:
            return Decimal(str(amount or 0))
        return sum((Decimal(str(r.get("amount") or 0)) for r in rows
                    if r.get("category") not in self.excluded_categories), Decimal(0))

    def promotion_on(self, day: dt.date) -> Promotion | None:
        running = [p for p in self.promotions if p.start <= day <= p.end]
        return max(running, key=lambda p: p.multiplier, default=None)

    def points(self, eligible: Decimal, tier: str, day: dt.date) -> int:
        base = (eligible / self.per_amount).to_integral_value(rounding=ROUND_FLOOR)
        multiplier = self.tier_multipliers.get(tier, Decimal(1))
        promotion = self.promotion_on(day)
        if promotion is not None:
            multiplier *= promotion.multiplier
        return int((base * multiplier).to_integral_value(rounding=ROUND_FLOOR))

    # -- tiers ---------------------------------------------------------------

    def tier_for(self, spend: Decimal) -> str:
        """The highest tier whose threshold the spend reaches."""
        reached = self.tier_order[0]
        for tier in self.tier_order[1:]:
            if spend >= self.thresholds[tier]:
                reached = tier
        return reached

    def rank(self, tier: str) -> int:
        return self.tier_order.index(tier) if tier in self.tier_order else 0

    def expiry_cutoff(self, today: dt.date) -> dt.date:
        """Points earned before this day have expired on ``today``."""
        return add_months(today, -self.expire_after_months)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (the month's last day when it has fewer days)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("every month has 28 days")  # pragma: no cover


def year_start(join_date: dt.date, today: dt.date) -> dt.date:
    """The start of the membership year holding ``today``: the last anniversary of joining."""
    years = today.year - join_date.year
    start = add_months(join_date, 12 * years)
    if start > today:
        start = add_months(join_date, 12 * (years - 1))
    return max(start, join_date)


def _problem(file: str, key: str, text: str) -> Problem:
    return Problem(file, None, None, key, text)


def _decimal(value: Any, file: str, key: str, problems: list[Problem]) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        problems.append(_problem(file, key, f"expected a number, got {value!r}"))
        return Decimal(1)
    if number <= 0:
        problems.append(_problem(file, key, f"expected a number above 0, got {value}"))
        return Decimal(1)
    return number


def _date(value: Any, file: str, key: str, problems: list[Problem]) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.append(_problem(file, key, f"expected a date YYYY-MM-DD, got {value!r}"))
        return dt.date.min


def parse_rules(data: Any, file: str) -> LoyaltyRules:
    """Check and read the rules; raises DefinitionError naming every problem."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise DefinitionError([_problem(file, "", "expected a mapping with points: and tiers:")])
    points = data.get("points") or {}
    tiers = data.get("tiers") or {}
    for section, known in (("points", {"per_amount", "tier_multipliers", "excluded_categories",
                                       "promotions", "expire_after_months"}),
                           ("tiers", {"order", "thresholds"}), ("membership", {"renewal_months"})):
        for key in set(data.get(section) or {}) - known:
            problems.append(_problem(file, f"{section}.{key}", f"unknown key; expected one of "
                                     f"{', '.join(sorted(known))}"))
    for key in set(data) - {"points", "tiers", "membership"}:
        problems.append(_problem(file, key, "unknown key; expected points, tiers, membership"))
    order = tuple(tiers.get("order") or ())
    if len(order) < 1:
        problems.append(_problem(file, "tiers.order", "list the tiers, lowest first"))
    thresholds = {}
    for tier in order[1:]:
        if tier not in (tiers.get("thresholds") or {}):
            problems.append(_problem(file, f"tiers.thresholds.{tier}", "missing threshold"))
            continue
        thresholds[tier] = _decimal(tiers["thresholds"][tier], file,
                                    f"tiers.thresholds.{tier}", problems)
    ordered = [thresholds[t] for t in order[1:] if t in thresholds]
    if ordered != sorted(ordered):
        problems.append(_problem(file, "tiers.thresholds", "thresholds must rise with the tiers"))
    multipliers = {}
    for tier, value in (points.get("tier_multipliers") or {}).items():
        if tier not in order:
            problems.append(_problem(file, f"points.tier_multipliers.{tier}",
                                     f"not a tier of tiers.order ({', '.join(order)})"))
        multipliers[tier] = _decimal(value, file, f"points.tier_multipliers.{tier}", problems)
    promotions = []
    for index, promo in enumerate(points.get("promotions") or []):
        where = f"points.promotions[{index}]"
        if not isinstance(promo, dict) or {"from", "to", "multiplier"} - set(promo):
            problems.append(_problem(file, where, "expected {name, from, to, multiplier}"))
            continue
        start = _date(promo["from"], file, f"{where}.from", problems)
        end = _date(promo["to"], file, f"{where}.to", problems)
        if end < start:
            problems.append(_problem(file, where, "'to' is before 'from'"))
        name = promo.get("name") or {"en": f"Promotion {index + 1}"}
        promotions.append(Promotion(name if isinstance(name, dict) else {"en": str(name)},
                                    start, end,
                                    _decimal(promo["multiplier"], file, f"{where}.multiplier",
                                             problems)))
    expire = points.get("expire_after_months", 24)
    if not isinstance(expire, int) or expire < 1:
        problems.append(_problem(file, "points.expire_after_months",
                                 "expected a whole number of months, 1 or more"))
        expire = 24
    renewal = (data.get("membership") or {}).get("renewal_months", 12)
    if not isinstance(renewal, int) or renewal < 1:
        problems.append(_problem(file, "membership.renewal_months",
                                 "expected a whole number of months, 1 or more"))
        renewal = 12
    if problems:
        raise DefinitionError(problems)
    return LoyaltyRules(
        per_amount=_decimal(points.get("per_amount", 10), file, "points.per_amount", problems),
        tier_multipliers=multipliers,
        excluded_categories=frozenset(points.get("excluded_categories") or ()),
        promotions=tuple(promotions),
        expire_after_months=expire,
        tier_order=order,
        thresholds=thresholds,
        renewal_months=renewal,
    )


@lru_cache(maxsize=4)
def _load(path: str, stamp: float) -> LoyaltyRules:
    """Parsed once per file version (``stamp`` is its mtime): a pure memo, not state."""
    shown = "packs/membership/loyalty.yaml"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DefinitionError([_problem(shown, "", f"not valid YAML: {exc}")]) from exc
    return parse_rules(data, shown)


def load_rules(path: Path = PACK_FILE) -> LoyaltyRules:
    """The rules of ``loyalty.yaml`` (the pack's own by default)."""
    return _load(str(path), path.stat().st_mtime)
