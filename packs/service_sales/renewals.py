"""Renewals (续约): an active contract nearing its end raises a renewal opportunity.

Each contract says how many days before its end date the renewal starts
(``renewal_notice_days``, 60 by default — set it per contract, or change the
default in a site overlay). :func:`raise_renewals` is meant to run once a
day (a scheduled job, or a script calling it with the site's clock): for
every active contract whose notice date has come and that has no renewal
opportunity yet, it creates one — for the same customer, owned by the
contract's owner, with the contract's service lines and value, expected to
close on the end date — and stores it on the contract, so a contract is
renewed once however often the job runs, also by runs at the same time (each
reads the contract locked before raising its renewal).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.pack_api import Actor, Filter, Records, transaction
from packs.service_sales.records_io import all_rows


def notice_date(contract: dict[str, Any]) -> dt.date | None:
    """The day the contract's renewal starts (None without an end date)."""
    end = contract.get("end_date")
    if end is None:
        return None
    return end - dt.timedelta(days=contract.get("renewal_notice_days") or 0)


def renewals_due(records: Records, actor: Actor, today: dt.date, *,
                 include_raised: bool = False) -> list[dict[str, Any]]:
    """Active contracts the actor reads whose renewal notice date is on or before ``today``."""
    rows = all_rows(records, actor, "contract", [Filter("stage", "eq", "active")],
                    with_children=True)
    due = [r for r in rows if (notice_date(r) or dt.date.max) <= today
           and (include_raised or r.get("renewal_opportunity") is None)]
    due.sort(key=lambda r: (r["end_date"], r["id"]))
    return due


def raise_renewals(records: Records, actor: Actor, today: dt.date) -> list[int]:
    """Create the renewal opportunities due on ``today``; the ids of those created.

    ``actor`` is whoever runs the job (the system actor for a scheduled job);
    each contract is renewed in its own transaction.
    """
    created = []
    for contract in renewals_due(records, actor, today):
        values = {
            "name": f"续约 Renewal: {contract['name']}",
            "customer": contract["customer"],
            "amount": contract.get("total"),
            "expected_close": contract["end_date"],
            "service_lines": [
                {k: line.get(k) for k in ("service", "unit", "quantity", "rate")}
                for line in contract.get("lines") or []
            ],
        }
        if contract.get("owner") is not None:
            values["owner"] = contract["owner"]
        with transaction(records) as conn:
            # held until the opportunity is stored on it: a run at the same time waits,
            # then finds the renewal raised
            current = records.locked(actor, "contract", contract["id"], conn=conn)
            if current.get("renewal_opportunity") is not None:
                continue
            opportunity = records.create(actor, "opportunity", values, conn=conn)
            records.update(actor, "contract", contract["id"],
                           {"renewal_opportunity": opportunity["id"]},
                           version=current["version"], conn=conn)
        created.append(opportunity["id"])
    return created
