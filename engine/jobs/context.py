"""What a scheduled job function is given: one :class:`JobContext`.

A pack's job is ``def renewals(context: JobContext) -> dict``.  It acts as
the system actor (``context.actor``), reads and writes through
``context.records`` like any other code, and takes "today" from the
occurrence (``context.today``, in the site's time zone) rather than from the
wall clock — so a run that catches up after a stopped worker works on the
day it was due, and tests drive it with a fixed clock.  What it returns is
recorded as the run's summary (``crm jobs``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.context import Actor, Clock

if TYPE_CHECKING:
    from engine.services.records.service import RecordService
    from engine.site import Site


@dataclass(frozen=True)
class JobContext:
    site: Site
    #: The system actor (an administrator without a user row) the job acts as.
    actor: Actor
    #: The occurrence being run, aware UTC (02:00 site time today, for a daily job at 02:00).
    occurrence: dt.datetime
    #: The occurrence's date in the site's time zone.
    today: dt.date
    clock: Clock

    @property
    def records(self) -> RecordService:
        return self.site.records
