"""The acting user as seen by a stage guard: ``current_user`` and ``current_roles``.

A guard such as "the approver is not the author" or "only the owner approves
above 500,000" compares the record with whoever takes the transition. The
record's values never hold that, so the workflow service adds these two
names to what a guard sees (and ``crm check`` accepts them in guards only):

- ``current_user`` — the acting user's id (compare with ``created_by`` or
  ``owner``); ``null`` for the engine's own system actor;
- ``current_roles`` — the list of the acting user's role keys
  (``'owner' in current_roles``).

They are given last, so a field of the same name cannot fake them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The names a guard may use besides the record's fields.
ACTOR_NAMES: tuple[str, ...] = ("current_user", "current_roles")


def actor_values(user_id: int | None, roles: Iterable[str]) -> dict[str, Any]:
    """The values of :data:`ACTOR_NAMES` for one acting user."""
    return {"current_user": user_id, "current_roles": sorted(roles)}
