"""``crm config export / import``: a site's configuration, carried to another site.

A consultant who has tuned one client's CRM — overlays in ``custom/``,
hooks, packs and locale, users with their roles, teams — can start the next
client from it.  The export is one YAML document with **no secrets**: no
database URL, no secret key, no password hashes, no API tokens.  Imported
users have no password until an administrator sets one.

An import is checked in full before anything is written: the document's
shape, the definitions the site would have (its packs and ``custom/`` with
the imported files, loaded and checked like ``crm check``), every role
named.  Users and teams are then written in one transaction, and the files
after it commits; a file of the site that the import would change is
refused unless ``replace`` is given.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, delete, insert, select, update

from engine.errors import ValidationFailed
from engine.metadata.loader import load_registry
from engine.metadata.model import Registry
from engine.metadata.packs import Requirement
from engine.site import OVERLAY_DIR, SITE_FILE, Site, SiteConfig
from engine.storage.database import write_transaction

FORMAT = 1
#: Settings of crm.yaml that travel; the database URL, secret key and paths do not.
SETTINGS: tuple[str, ...] = ("packs", "locale", "currency", "timezone")
#: Files of custom/ that travel (definitions, hooks, notes).
FILE_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".py", ".md")
USER_FIELDS: tuple[str, ...] = ("display_name", "email", "language", "active", "is_admin")


@dataclass
class ImportSummary:
    """What an import did, for the person who ran it."""

    files: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    users_updated: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def export_config(site: Site) -> dict[str, Any]:
    """The site's configuration as plain data (see the module docstring)."""
    raw = yaml.safe_load((site.config.root / SITE_FILE).read_text(encoding="utf-8")) or {}
    settings = {key: raw[key] for key in SETTINGS if key in raw}
    files: dict[str, str] = {}
    overlay = site.config.overlay_dir
    if overlay.is_dir():
        for path in sorted(overlay.iterdir()):
            if path.is_file() and path.suffix in FILE_SUFFIXES:
                files[path.name] = path.read_text(encoding="utf-8")
    users = []
    for user in site.users.list():
        users.append({"login": user["login"], **{k: user.get(k) for k in USER_FIELDS},
                      "roles": sorted(user.get("roles") or [])})
    teams = [{"name": t["name"], "label": t["label"], "parent": t["parent"],
              "manager": t["manager"], "members": list(t["members"])}
             for t in site.users.teams.list()]
    return {"visioncrm_config": FORMAT, "site": site.config.name, "settings": settings,
            "files": files, "users": users, "teams": teams}


def dump_config(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), allow_unicode=True, sort_keys=False, width=100)


# -- import ------------------------------------------------------------------------------


def _shape_errors(data: Any) -> dict[str, list[str]]:
    """What is wrong with the document's shape, by place (empty when it is right)."""
    errors: dict[str, list[str]] = {}

    def bad(where: str, text: str) -> None:
        errors.setdefault(where, []).append(text)

    if not isinstance(data, dict) or data.get("visioncrm_config") != FORMAT:
        bad("visioncrm_config", f"not a VisionCRM configuration export (format {FORMAT})")
        return errors
    settings = data.get("settings") or {}
    if not isinstance(settings, dict) or set(settings) - set(SETTINGS):
        bad("settings", f"a mapping with some of: {', '.join(SETTINGS)}")
    elif "packs" in settings and not (isinstance(settings["packs"], list) and all(
            isinstance(p, str) for p in settings["packs"])):
        bad("settings.packs", "a list of pack names")
    files = data.get("files") or {}
    if not isinstance(files, dict):
        bad("files", "a mapping of file name → text")
    else:
        for name, text in files.items():
            if (not isinstance(name, str) or Path(name).name != name or name.startswith(".")
                    or Path(name).suffix not in FILE_SUFFIXES):
                bad(f"files.{name}", "a plain file name ending in "
                    + ", ".join(FILE_SUFFIXES))
            elif not isinstance(text, str):
                bad(f"files.{name}", "the file's text")
    logins: set[str] = set()
    for index, user in enumerate(data.get("users") or []):
        where = f"users[{index}]"
        if not isinstance(user, dict) or not isinstance(user.get("login"), str) \
                or not user["login"].strip():
            bad(where, "a mapping with a login")
            continue
        if user["login"] in logins:
            bad(f"{where}.login", f"'{user['login']}' is listed twice")
        logins.add(user["login"])
        if not isinstance(user.get("roles", []), list):
            bad(f"{where}.roles", "a list of role keys")
        unknown = set(user) - {"login", "roles", *USER_FIELDS}
        if unknown:
            bad(where, f"unknown keys: {', '.join(sorted(unknown))} (passwords never travel)")
    parents: dict[str, Any] = {}
    for index, team in enumerate(data.get("teams") or []):
        if not isinstance(team, dict) or not isinstance(team.get("name"), str):
            bad(f"teams[{index}]", "a mapping with a name")
            continue
        parents[team["name"]] = team.get("parent")
    for index, name in enumerate(parents):
        seen, current = {name}, parents[name]
        while current in parents:
            if current in seen:
                bad(f"teams[{index}].parent", f"team '{name}' would be under itself")
                break
            seen.add(current)
            current = parents[current]
    return errors


def _check_definitions(config: SiteConfig, packs: list[str], files: Mapping[str, str]
                       ) -> Registry:
    """The registry the site would have with ``packs`` and the files; raises if it is wrong."""
    with tempfile.TemporaryDirectory() as folder:
        overlay = Path(folder) / OVERLAY_DIR
        if config.overlay_dir.is_dir():
            shutil.copytree(config.overlay_dir, overlay)
        else:
            overlay.mkdir()
        for name, text in files.items():
            (overlay / name).write_text(text, encoding="utf-8")
        return load_registry([Requirement(p) for p in packs], search_paths=config.pack_paths,
                             overlay_dir=overlay, overlay_prefix=OVERLAY_DIR)


def import_config(site: Site, data: Any, *, replace: bool = False) -> ImportSummary:
    """Apply an export to ``site``; all checked first (see the module docstring)."""
    errors = _shape_errors(data)
    if errors:
        raise ValidationFailed(errors, "The file is not a configuration this site can take.")
    config = site.config
    settings = dict(data.get("settings") or {})
    files = dict(data.get("files") or {})
    changed = [name for name, text in files.items()
               if (config.overlay_dir / name).is_file()
               and (config.overlay_dir / name).read_text(encoding="utf-8") != text]
    if changed and not replace:
        raise ValidationFailed({f"files.{name}": [
            f"{OVERLAY_DIR}/{name} exists with other content; import with replace to "
            "overwrite it"] for name in changed})
    registry = _check_definitions(config, list(settings.get("packs") or config.packs), files)
    known_roles = set(registry.roles)
    role_errors = {
        f"users[{i}].roles": [f"there is no role '{r}'; roles: {', '.join(sorted(known_roles))}"
                              for r in user.get("roles") or [] if r not in known_roles]
        for i, user in enumerate(data.get("users") or [])
    }
    role_errors = {k: v for k, v in role_errors.items() if v}
    if role_errors and known_roles:
        raise ValidationFailed(role_errors, "Some users have roles the site does not declare.")
    summary = ImportSummary(settings=settings)
    with write_transaction(site.engine) as conn:
        _write_people(site, conn, data, summary)
    _write_files(config, settings, files, summary)
    return summary


def _write_people(site: Site, conn: Connection, data: Mapping[str, Any],
                  summary: ImportSummary) -> None:
    users, roles = site.users.users, site.users.roles
    teams, members = site.schema.system("crm_team"), site.schema.system("crm_team_member")
    now = site.clock.now()
    ids: dict[str, int] = {}
    for user in data.get("users") or []:
        login = user["login"].strip()
        values = {k: user[k] for k in USER_FIELDS if k in user and user[k] is not None}
        found = conn.execute(select(users.c.id).where(users.c.login == login)).scalar()
        if found is None:
            values.setdefault("display_name", login)
            values.setdefault("language", "en")
            values.setdefault("active", True)
            values.setdefault("is_admin", False)
            found = conn.execute(insert(users).values(
                login=login, password_hash=None, created_at=now, **values)).inserted_primary_key[0]
            summary.users_created.append(login)
        else:
            if values.get("active") is False:  # deactivated by the import: sessions end
                values["session_epoch"] = users.c.session_epoch + 1
            if values:
                conn.execute(update(users).where(users.c.id == found).values(**values))
            summary.users_updated.append(login)
        ids[login] = found
        conn.execute(delete(roles).where(roles.c.user_id == found))
        wanted = sorted(set(user.get("roles") or []))
        if wanted:
            conn.execute(insert(roles), [{"user_id": found, "role": r} for r in wanted])

    def user_id(login: str | None, where: str) -> int | None:
        if login is None:
            return None
        if login not in ids:
            ids[login] = conn.execute(select(users.c.id).where(users.c.login == login)).scalar()
        if ids[login] is None:
            raise ValidationFailed({where: [f"there is no user '{login}'"]})
        return ids[login]

    team_ids: dict[str, int] = {}
    for team in data.get("teams") or []:
        name = team["name"]
        found = conn.execute(select(teams.c.id).where(teams.c.name == name)).scalar()
        if found is None:
            found = conn.execute(insert(teams).values(
                name=name, label=team.get("label") or name, created_at=now)
            ).inserted_primary_key[0]
        team_ids[name] = found
        summary.teams.append(name)
    for index, team in enumerate(data.get("teams") or []):
        where = f"teams[{index}]"
        parent = team.get("parent")
        if parent is not None and parent not in team_ids:
            team_ids[parent] = conn.execute(select(teams.c.id).where(teams.c.name == parent)).scalar()
            if team_ids[parent] is None:
                raise ValidationFailed({f"{where}.parent": [f"there is no team '{parent}'"]})
        conn.execute(update(teams).where(teams.c.id == team_ids[team["name"]]).values(
            label=team.get("label") or team["name"],
            parent_id=team_ids[parent] if parent else None,
            manager_id=user_id(team.get("manager"), f"{where}.manager")))
        conn.execute(delete(members).where(members.c.team_id == team_ids[team["name"]]))
        logins = sorted(set(team.get("members") or []))
        if logins:
            conn.execute(insert(members), [
                {"team_id": team_ids[team["name"]], "user_id": user_id(m, f"{where}.members")}
                for m in logins])


def _write_files(config: SiteConfig, settings: Mapping[str, Any], files: Mapping[str, str],
                 summary: ImportSummary) -> None:
    """Each file written to a temporary name and moved into place, so none is left half-written."""
    config.overlay_dir.mkdir(exist_ok=True)
    for name, text in files.items():
        target = config.overlay_dir / name
        temporary = target.with_name(f".{name}.importing")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
        summary.files.append(f"{OVERLAY_DIR}/{name}")
    if settings:
        site_file = config.root / SITE_FILE
        current = yaml.safe_load(site_file.read_text(encoding="utf-8")) or {}
        current.update(settings)
        temporary = site_file.with_name(f".{SITE_FILE}.importing")
        temporary.write_text(yaml.safe_dump(current, allow_unicode=True, sort_keys=False),
                             encoding="utf-8")
        os.replace(temporary, site_file)
