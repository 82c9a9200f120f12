"""A service_sales site of the old layout upgrades to the building blocks without loss.

The payment plan and collections moved from service_sales to the
receivables block (docs/packs/building_blocks.md). A table is named after
its entity, not its pack, so the move must leave every table, row, history
entry, file and sequence counter where it is: ``crm migrate`` only records
the new definitions. The old layout is the pack as released
(tests/fixtures/old_layout); the site is populated with its demo, a
generated consultancy and files, then migrated with the command a site
owner runs.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import MetaData, inspect, select

from engine.cli import main
from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.site import Site
from packs.service_sales.demo_generator import generate
from tests.support import open_migrated, write_site

OLD_LAYOUT = Path(__file__).parent / "fixtures" / "old_layout"
NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
#: Written by the migration itself: one more applied definition.
MIGRATION_LOG = "crm_definitions"


def _tables(site: Site) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the site with its rows, in a stable order."""
    metadata = MetaData()
    with site.engine.connect() as conn:
        names = inspect(conn).get_table_names()
        metadata.reflect(conn, only=names)
        return {name: sorted((tuple(map(repr, row)) for row in conn.execute(
            select(metadata.tables[name]))), key=repr)
            for name in names if name != MIGRATION_LOG}


def _populate(site: Site) -> None:
    site.users.create("root", password="password-1", roles=["admin"], is_admin=True)
    root = site.users.actor("root")
    load_demo(site.records, root, [Path(p.path) for p in site.registry.packs.values()],
              workflows=site.workflows)
    generate(site, 60, seed=11)
    collection = site.records.list(root, "collection", limit=1).rows[0]
    plan = site.records.list(root, "payment_plan", limit=1).rows[0]
    site.attachments.attach(root, "collection", collection["id"], "银行回单.pdf",
                            io.BytesIO(b"%PDF-1.4 bank slip"))
    site.attachments.attach(root, "payment_plan", plan["id"], "schedule.txt",
                            io.BytesIO(b"30/40/30"))


def test_an_old_service_sales_site_migrates_to_the_receivables_block(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["service_sales"], pack_paths=[OLD_LAYOUT])
    old = open_migrated(root, clock=FixedClock(NOW))
    try:
        assert old.registry.entities["collection"].pack == "service_sales"  # the old layout
        _populate(old)
        before = _tables(old)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.is_file() and p.parent != root)
    finally:
        old.close()
    counted = {name: len(before[name]) for name in ("collection", "payment_plan", "crm_audit",
                                                    "crm_stage_history", "crm_attachment",
                                                    "crm_sequence")}
    assert all(counted.values()), counted  # a populated site: something of each to keep
    assert len(files) == 2  # the two files, in the site's folder store

    config = yaml.safe_load((root / "crm.yaml").read_text(encoding="utf-8"))
    del config["pack_paths"]  # the installed packs: the new layout
    (root / "crm.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    runner = CliRunner()
    plan = runner.invoke(main, ["--site", str(root), "migrate", "--plan"],
                         catch_exceptions=False)
    assert plan.exit_code == 0, plan.output
    assert "Record the new definitions (no change to the tables)" in plan.output, plan.output
    done = runner.invoke(main, ["--site", str(root), "migrate"], catch_exceptions=False)
    assert done.exit_code == 0, done.output

    new = Site.open(root, clock=FixedClock(NOW))
    try:
        assert new.registry.entities["collection"].pack == "receivables"
        assert new.registry.entities["payment_plan"].extended_by == ("service_sales",)
        after = _tables(new)
        assert after == before  # every row of every table, history, files and counters
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and p.parent != root) == files
        # The counter goes on from where it was: no number given twice.
        fin = Actor.system()
        numbers = [r["reference_no"] for r in new.records.list(fin, "collection", limit=1000).rows]
        plan_row = next(r for r in new.records.list(fin, "payment_plan", limit=1000).rows
                        if r["collected"] < r["amount"])
        made = new.records.create(fin, "collection", {
            "payment_plan": plan_row["id"], "received_on": "2026-11-23", "amount": "1"})
        assert made["reference_no"] not in numbers
        assert made["reference_no"] > max(n for n in numbers if n[:7] == made["reference_no"][:7])
    finally:
        new.close()


@pytest.mark.parametrize("pack", ["service_sales"])
def test_the_old_layout_fixture_is_the_released_pack(pack):
    """The fixture keeps the entities the upgrade test is about, as they were defined."""
    entities = {p.stem for p in (OLD_LAYOUT / pack / "entities").glob("*.yaml")}
    assert {"collection", "payment_plan"} <= entities
    assert yaml.safe_load((OLD_LAYOUT / pack / "pack.yaml").read_text())["depends"] == ["core"]
