"""Data migrations between pack versions: a field split in an upgrade carries its data over."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import MetaData, Table, select

from engine.context import FixedClock
from engine.errors import DefinitionError, MigrationFailed, MigrationRefused
from engine.metadata.loader import load_registry
from engine.site import Site
from engine.storage.migration import applied_state, apply_migration
from engine.testing import DEFAULT_START, open_pack_site, write_pack

V1 = {"entities/contact.yaml": """
    entity: contact
    fields:
      name: {type: string, required: true}
      phone: {type: string}
"""}
V2 = {"entities/contact.yaml": """
    entity: contact
    fields:
      first_name: {type: string}
      last_name: {type: string}
      phone: {type: string}
""", "migrations.py": '''
    """Data migrations of the people pack."""

    from sqlalchemy import select, update


    def split_name(context):
        contact = context.table("contact")
        rows = context.conn.execute(select(contact.c.id, contact.c.name)).all()
        for row_id, name in rows:
            first, _, last = name.partition(" ")
            context.conn.execute(update(contact).where(contact.c.id == row_id)
                                 .values(first_name=first, last_name=last or None))


    def explode(context):
        raise RuntimeError("cannot split")
'''}


def write_people(tmp_path, version, files, migrations=()):
    root = write_pack(tmp_path / "packs", "people", files, version=version)
    manifest = yaml.safe_load((root / "pack.yaml").read_text())
    if migrations:
        manifest["migrations"] = [{"before": b, "function": f} for b, f in migrations]
    (root / "pack.yaml").write_text(yaml.safe_dump(manifest))
    return root


@pytest.fixture
def site_v1(tmp_path, db_url):
    write_people(tmp_path, "1.0.0", V1)
    with open_pack_site(tmp_path / "site", db_url, ["people"],
                        pack_paths=[tmp_path / "packs"]) as kit:
        kit.create(kit.admin, "contact", name="Wang Fang", phone="138")
        kit.create(kit.admin, "contact", name="Madonna")
    return tmp_path / "site"


def reopen(root):
    return Site.open(root, clock=FixedClock(DEFAULT_START))


def test_an_upgrade_that_splits_a_field_carries_the_data_over(tmp_path, site_v1):
    write_people(tmp_path, "2.0.0", V2, [("2.0.0", "split_name")])
    lines: list[str] = []
    with reopen(site_v1) as site:
        apply_migration(site.engine, site.registry, site.schema, allow_destructive=True,
                        progress=lines.append)
        admin = site.users.actor("admin")
        rows = site.records.list(admin, "contact", sort=()).rows
        assert sorted((r["first_name"], r["last_name"], r["phone"]) for r in rows) == [
            ("Madonna", None, None), ("Wang", "Fang", "138")]
        assert applied_state(site.engine).packs == {"people": "2.0.0"}
        archive = site.schema.system("crm_archive")
        with site.engine.connect() as conn:
            assert conn.execute(select(archive)).first() is not None  # the old names are kept
    assert lines == [  # after the new columns exist, before the old one goes
        'Add field "First name" (first_name: string) to Contact',
        'Add field "Last name" (last_name: string) to Contact',
        "Run data migration 'split_name' of pack 'people' (1.0.0 → 2.0.0)",
        'Remove field "name" from Contact — 2 values will be moved to the archive']


def test_a_failing_data_migration_changes_nothing(tmp_path, site_v1):
    write_people(tmp_path, "2.0.0", V2, [("2.0.0", "explode")])
    with reopen(site_v1) as site:
        before = applied_state(site.engine)
        with pytest.raises(MigrationFailed, match="data migration 'explode' of pack 'people'.*"
                                                  "cannot split"):
            apply_migration(site.engine, site.registry, site.schema, allow_destructive=True)
        assert applied_state(site.engine).definitions_hash == before.definitions_hash
        table = Table("contact", MetaData(), autoload_with=site.engine)  # as the database has it
        assert "name" in table.c and "first_name" not in table.c


def test_the_destructive_part_still_needs_permission(tmp_path, site_v1):
    write_people(tmp_path, "2.0.0", V2, [("2.0.0", "split_name")])
    with reopen(site_v1) as site, pytest.raises(MigrationRefused):
        apply_migration(site.engine, site.registry, site.schema)


def test_a_fresh_install_or_a_later_upgrade_runs_no_step(tmp_path, db_url):
    write_people(tmp_path, "2.0.0", V2, [("2.0.0", "explode")])
    with open_pack_site(tmp_path / "site", db_url, ["people"],
                        pack_paths=[tmp_path / "packs"]) as kit:
        kit.create(kit.admin, "contact", first_name="Li")
    write_people(tmp_path, "2.1.0", V2, [("2.0.0", "explode")])  # 2.0.0 → 2.1.0: not needed
    with reopen(tmp_path / "site") as site:
        apply_migration(site.engine, site.registry, site.schema)
        assert applied_state(site.engine).packs == {"people": "2.1.0"}


def test_check_names_a_missing_migration_function(tmp_path):
    write_people(tmp_path, "2.0.0", V2, [("2.0.0", "split_nmae")])
    with pytest.raises(DefinitionError) as caught:
        load_registry(["people"], search_paths=[tmp_path / "packs"])
    (problem,) = caught.value.problems
    assert (problem.file, problem.path) == ("packs/people/pack.yaml", "migrations[0].function")
    assert problem.message == ("packs/people/migrations.py has no function 'split_nmae' "
                               "(did you mean 'split_name'?); expected one of: explode, split_name")
