"""``GET /<entity>/balances``: the balances of a ledger entity over the API (docs/ledger.md).

``?by=product`` groups by some of the ledger's dimensions (all by default);
any other ``dimension=value`` narrows to it (``?warehouse=2``).  The sums
cover the movements the caller may read, so a dealer's user gets the stock
of its own dealer only — the same :class:`~engine.services.records.ledgers.LedgerService`
the UI and reports use.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from engine.api.auth import api_actor
from engine.api.records import answer
from engine.errors import ValidationFailed
from engine.http.context import site
from engine.metadata.values import INT_MAX


def register(bp: Any) -> None:
    @bp.get("/<entity>/balances")
    def ledger_balances(entity: str) -> Response:
        ledgers = site().ledgers
        _, ledger = ledgers.ledger(entity)
        by = [d.strip() for d in request.args.get("by", "").split(",") if d.strip()] or None
        where: dict[str, Any] = {}
        for key, value in request.args.items():
            if key == "by":
                continue
            if key not in ledger.dimensions:
                raise ValidationFailed({key: [f"'{key}' is not a dimension of this ledger "
                                              f"({', '.join(ledger.dimensions)})."]})
            field = site().records.entity(entity).fields[key]
            if field.type in ("reference", "integer"):
                if not (value.isascii() and value.isdigit()) or len(value) > 19 \
                        or int(value) > INT_MAX:
                    raise ValidationFailed({key: ["Give a whole number (at most 64 bits)."]})
                where[key] = int(value)
            else:
                where[key] = value
        balances = ledgers.balances(api_actor(), entity, by=by, where=where)
        return answer({"items": [b.as_json() for b in balances]})
