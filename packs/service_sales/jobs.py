"""The service-sales pack's scheduled jobs (declared under ``jobs:`` in pack.yaml)."""

from __future__ import annotations

from typing import Any

from engine.pack_api import JobContext
from packs.service_sales.renewals import raise_renewals


def renewals(context: JobContext) -> dict[str, Any]:
    """Daily: raise the renewal opportunities of contracts whose notice date has come."""
    created = raise_renewals(context.records, context.actor, context.today)
    return {"opportunities": len(created), "ids": created[:50]}
