"""Every page type of every entity of every built-in pack, for each core role.

The expected answer of each page comes from the services themselves: a page
the policy lets the role read answers 200, one it refuses 403, a record
outside the role's scope 404 — so the web layer is checked to add nothing
and hide nothing.  Parametrised per pack, so a pack's problem names it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import FixedClock
from engine.errors import CrmError, NotFound, PermissionDenied
from engine.metadata.packs import BUILTIN_PACKS_DIR
from engine.metadata.workflow_model import workflow_for
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import _sample, login, post

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"
CORE_ROLES = ("admin", "owner", "manager", "sales")
PACKS = sorted(p.parent.name for p in BUILTIN_PACKS_DIR.glob("*/pack.yaml"))


def _samples(site, actor) -> dict[str, dict]:
    """A record of every entity the generic sampler can fill (a pack's business rules may
    refuse generic values — a delivery of a draft order — and such entities are then
    checked without a record: list, new and kanban only)."""
    today = site.clock.now().date()
    created: dict[str, dict] = {}
    for _ in range(len(site.registry.entities) + 1):
        for key, entity in site.registry.entities.items():
            if key in created:
                continue
            values: dict = {}
            try:
                for field in entity.fields.values():
                    if field.is_input and field.type != "lines" and (
                            field.required or field.key == entity.title_field):
                        values[field.key] = _sample(field, created, today)
                for _attempt in range(3):
                    try:
                        created[key] = site.records.create(actor, key, values)
                        break
                    except CrmError as exc:
                        wanted = [k for k in getattr(exc, "errors", {})
                                  if k in entity.fields and k not in values]
                        if not wanted:
                            break
                        for name in wanted:
                            values[name] = _sample(entity.fields[name], created, today)
            except KeyError:
                continue
    return created


def _expected_record(site, actor, entity_key: str, record_id: int) -> int:
    try:
        site.records.get(actor, entity_key, record_id)
    except NotFound:
        return 404
    except PermissionDenied:
        return 403
    return 200


@pytest.mark.parametrize("pack", PACKS)
def test_every_page_renders_for_every_role_or_is_refused(pack, tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, [pack])
    site = open_migrated(root, clock=FixedClock(NOW))
    try:
        site.users.create("root", password=PASSWORD, roles=["admin"], is_admin=True)
        roles = [r for r in CORE_ROLES if r in site.registry.roles]
        for role in roles:
            site.users.create(f"u_{role}", password=PASSWORD, roles=[role])
        samples = _samples(site, site.users.actor("root"))
        assert len(samples) >= len(site.registry.entities) // 2, sorted(samples)
        app = create_app(site, testing=True)
        policy = site.records.policy
        checked = 0
        for role in roles:
            client = app.test_client()
            assert login(client, f"u_{role}", PASSWORD).status_code == 302
            me = site.users.actor(f"u_{role}")
            for path in ["/", "/profile",
                         *(f"/dashboards/{name}" for name in site.registry.dashboards)]:
                response = client.get(path)
                assert response.status_code in (200, 404), (role, path)
                if path in ("/", "/profile"):
                    assert response.status_code == 200, (role, path)
            for key, entity in site.registry.entities.items():
                can = {a: policy.can(me, entity, a) for a in ("read", "create", "update")}
                pages = {
                    f"/r/{key}": 200 if can["read"] else 403,
                    f"/r/{key}/new": 200 if can["create"] else 403,
                }
                seen = None
                if key in samples:
                    record_id = samples[key]["id"]
                    seen = _expected_record(site, me, key, record_id) if can["read"] else 403
                    pages[f"/r/{key}/{record_id}"] = seen
                    pages[f"/r/{key}/{record_id}/edit"] = (
                        403 if seen == 200 and not can["update"] else seen)
                if workflow_for(site.registry.workflows, key) is not None:
                    pages[f"/r/{key}/kanban"] = 200 if can["read"] else 403
                for path, status in pages.items():
                    response = client.get(path)
                    assert response.status_code == status, (
                        role, path, response.status_code, response.get_data(as_text=True)[:300])
                    checked += 1
                if not can["create"]:  # refused on the server, not only by a hidden button
                    assert post(client, f"/r/{key}/new", {}).status_code == 403, (role, key)
                if seen == 404:
                    assert post(client, f"/r/{key}/{record_id}/edit", {}).status_code == 404
        assert checked >= 4 * len(site.registry.entities)
    finally:
        site.close()
