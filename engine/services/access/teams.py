"""Teams: who works with whom, for the ``team`` row scope.

Teams nest (East sales and West sales under Sales); a team's manager
belongs to it.  A user's ``team`` scope covers every team they belong to or
manage *and all their sub-teams*, resolved when their :class:`Actor` is
built, so a sales director sees the figures of every regional team under
theirs.  A team cannot become its own ancestor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from engine.context import Clock, default_clock
from engine.errors import NotFound, ValidationFailed
from engine.storage.database import write_transaction
from engine.storage.tables import Schema


def descendants(conn: Connection, teams_table: Any, roots: Iterable[int]) -> set[int]:
    """The teams given and every team below them."""
    found = set(roots)
    frontier = set(found)
    while frontier:
        children = set(conn.execute(
            select(teams_table.c.id).where(teams_table.c.parent_id.in_(sorted(frontier)))
        ).scalars())
        frontier = children - found
        found |= children
    return found


class TeamService:
    """Create teams, nest them, give them a manager and members."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock | None = None) -> None:
        self.teams = schema.system("crm_team")
        self.members = schema.system("crm_team_member")
        self.users = schema.system("crm_user")
        self.engine = engine
        self.clock = clock or default_clock()

    def _team_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(self.teams.c.id).where(self.teams.c.name == name)).scalar()
        if found is None:
            raise NotFound(f"There is no team '{name}'.")
        return found

    def _user_id(self, conn: Connection, login: str) -> int:
        found = conn.execute(select(self.users.c.id).where(self.users.c.login == login)).scalar()
        if found is None:
            raise NotFound(f"There is no user '{login}'.")
        return found

    def create(self, name: str, *, label: str | None = None, parent: str | None = None,
               manager: str | None = None) -> dict[str, Any]:
        name = name.strip()
        if not name:
            raise ValidationFailed({"name": ["This field is required."]})
        with write_transaction(self.engine) as conn:
            if conn.execute(select(self.teams.c.id).where(self.teams.c.name == name)).first():
                raise ValidationFailed({"name": [f"'{name}' is already taken."]})
            conn.execute(insert(self.teams).values(
                name=name, label=label or name, created_at=self.clock.now(),
                parent_id=self._team_id(conn, parent) if parent else None,
                manager_id=self._user_id(conn, manager) if manager else None,
            ))
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.teams).where(self.teams.c.name == name)).mappings().first()
            if row is None:
                raise NotFound(f"There is no team '{name}'.")
            return self._describe(conn, dict(row))

    def _describe(self, conn: Connection, team: dict[str, Any]) -> dict[str, Any]:
        t, u, m = self.teams, self.users, self.members
        team["parent"] = conn.execute(select(t.c.name).where(t.c.id == team["parent_id"])).scalar()
        team["manager"] = conn.execute(
            select(u.c.login).where(u.c.id == team["manager_id"])).scalar()
        team["members"] = list(conn.execute(
            select(u.c.login).join(m, m.c.user_id == u.c.id).where(m.c.team_id == team["id"])
            .order_by(u.c.login)).scalars())
        return team

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.teams).order_by(self.teams.c.name)).mappings().all()
            return [self._describe(conn, dict(r)) for r in rows]

    def set_parent(self, name: str, parent: str | None) -> dict[str, Any]:
        """Put a team under another (None: at the top); refuses to make a loop."""
        with write_transaction(self.engine) as conn:
            team_id = self._team_id(conn, name)
            parent_id = self._team_id(conn, parent) if parent else None
            if parent_id is not None and parent_id in descendants(conn, self.teams, [team_id]):
                raise ValidationFailed({"parent": [
                    f"'{parent}' is '{name}' or one of its sub-teams; a team cannot be under "
                    "itself"]})
            conn.execute(update(self.teams).where(self.teams.c.id == team_id)
                         .values(parent_id=parent_id))
        return self.get(name)

    def set_manager(self, name: str, login: str | None) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            team_id = self._team_id(conn, name)
            manager_id = self._user_id(conn, login) if login else None
            conn.execute(update(self.teams).where(self.teams.c.id == team_id)
                         .values(manager_id=manager_id))
        return self.get(name)

    def add_member(self, name: str, login: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            team_id, user_id = self._team_id(conn, name), self._user_id(conn, login)
            exists = conn.execute(select(self.members.c.team_id).where(
                self.members.c.team_id == team_id, self.members.c.user_id == user_id)).first()
            if not exists:
                conn.execute(insert(self.members).values(team_id=team_id, user_id=user_id))
        return self.get(name)

    def remove_member(self, name: str, login: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            team_id, user_id = self._team_id(conn, name), self._user_id(conn, login)
            conn.execute(delete(self.members).where(
                self.members.c.team_id == team_id, self.members.c.user_id == user_id))
        return self.get(name)

    def remove(self, name: str) -> None:
        """Delete a team; its sub-teams move up to its parent, records are untouched."""
        with write_transaction(self.engine) as conn:
            team_id = self._team_id(conn, name)
            parent_id = conn.execute(
                select(self.teams.c.parent_id).where(self.teams.c.id == team_id)).scalar()
            conn.execute(update(self.teams).where(self.teams.c.parent_id == team_id)
                         .values(parent_id=parent_id))
            conn.execute(delete(self.members).where(self.members.c.team_id == team_id))
            conn.execute(delete(self.teams).where(self.teams.c.id == team_id))

    def tree_of(self, user_id: Any) -> Any:
        """The teams ``user_id`` belongs to or manages with every team below them, as a
        recursive CTE with one column, ``id``."""
        member_of = select(self.members.c.team_id).where(self.members.c.user_id == user_id)
        direct = (select(self.teams.c.id)
                  .where(or_(self.teams.c.id.in_(member_of), self.teams.c.manager_id == user_id))
                  .cte("team_tree", recursive=True))
        return direct.union(
            select(self.teams.c.id).join(direct, self.teams.c.parent_id == direct.c.id))
