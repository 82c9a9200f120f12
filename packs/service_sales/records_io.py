"""Reading every row a report needs, page by page, through the record service.

Reports read with the asking actor, so their figures stay inside that
actor's scope; this helper only saves each module from writing the paging loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.pack_api import Actor, Filter, Records

PAGE = 1000


def all_rows(records: Records, actor: Actor, entity: str, filters: Sequence[Filter] = (),
             *, with_children: bool = False) -> list[dict[str, Any]]:
    """Every record of ``entity`` the actor reads that matches ``filters``, oldest first."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = records.list(actor, entity, filters=filters, sort=(), limit=PAGE, offset=offset,
                            with_total=False, with_children=with_children)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += PAGE
