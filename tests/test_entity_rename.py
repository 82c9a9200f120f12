"""An entity renamed (``renamed_from:`` on the entity) keeps its records, history, files and numbers.

An entity moving into a building block may have to take the block's key
(project_sales's ``instalment`` becoming the receivables block's
``payment_plan``, docs/packs/building_blocks.md). ``crm migrate`` renames
its table and its lines tables, and moves what the engine's own tables keep
under the old key — the audit history, files, archived values and the
number counters — to the new one, in the same transaction. References from
other entities follow the table.
"""

from __future__ import annotations

import io
import shutil

import pytest
from sqlalchemy import func, select

from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from engine.site import Site
from engine.storage.migration import apply_migration, plan_migration
from tests.support import open_migrated, write_pack, write_site

INSTALMENT = """
    entity: instalment
    title_field: number
    fields:
      number: {type: sequence, sequence_pattern: "FK-{#####}", label: Number}
      name: {type: string, required: true, label: Name}
      amount: {type: decimal, precision: 12, scale: 2, label: Amount}
      parts:
        type: lines
        label: Parts
        fields:
          share: {type: integer, label: Share}
"""
PAYMENT = """
    entity: payment
    fields:
      instalment: {type: reference, to: instalment, label: Instalment}
      amount: {type: decimal, precision: 12, scale: 2, label: Amount}
"""
PAYMENT_PLAN = INSTALMENT.replace("entity: instalment", "entity: payment_plan\n    renamed_from: instalment")
PAYMENT_V2 = """
    entity: payment
    fields:
      payment_plan: {type: reference, to: payment_plan, renamed_from: instalment, label: Plan}
      amount: {type: decimal, precision: 12, scale: 2, label: Amount}
"""


def _count(site: Site, table: str, **where: str) -> int:
    t = site.schema.system(table)
    query = select(func.count()).select_from(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with site.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_a_renamed_entity_keeps_records_history_files_and_numbers(tmp_path, db_url):
    packs = tmp_path / "packs"
    write_pack(packs, "billing", {"entities/instalment.yaml": INSTALMENT,
                                  "entities/payment.yaml": PAYMENT})
    root = write_site(tmp_path / "site", db_url, ["billing"], pack_paths=[packs])
    site = open_migrated(root)
    try:
        site.users.create("root", password="password-1", roles=["admin"], is_admin=True)
        actor = site.users.actor("root")
        made = [site.records.create(actor, "instalment", {
            "name": name, "amount": "100", "parts": [{"share": 30}, {"share": 70}]})
            for name in ("advance", "acceptance", "retention")]
        site.records.update(actor, "instalment", made[0]["id"], {"amount": "120"})
        site.records.delete(actor, "instalment", made[2]["id"])
        site.records.create(actor, "payment", {"instalment": made[0]["id"], "amount": "120"})
        site.attachments.attach(actor, "instalment", made[0]["id"], "slip.txt",
                                io.BytesIO(b"bank slip"))
        history = _count(site, "crm_audit", entity="instalment")
        assert history > 0 and [m["number"] for m in made] == ["FK-00001", "FK-00002", "FK-00003"]
    finally:
        site.close()

    shutil.rmtree(packs / "billing")
    write_pack(packs, "billing", {"entities/payment_plan.yaml": PAYMENT_PLAN,
                                  "entities/payment.yaml": PAYMENT_V2}, version="2.0.0")
    site = Site.open(root)
    try:
        plan = plan_migration(site.engine, site.registry, site.schema)
        described = plan.describe()
        assert 'Rename entity "instalment" to "payment_plan" (Payment plan: records, history, ' \
               "files and numbers kept)" in described, described
        assert 'Rename field "instalment" to "payment_plan" on Payment (data kept)' in described
        assert ('Rename the table of lines field "parts" from "instalment__parts" to '
                '"payment_plan__parts" (data kept)') in described
        assert plan.destructive == (), described
        apply_migration(site.engine, site.registry, site.schema, clock=site.clock)

        actor = site.users.actor("root")
        first = site.records.get(actor, "payment_plan", made[0]["id"])
        assert (first["number"], str(first["amount"])) == ("FK-00001", "120.00")
        assert [p["share"] for p in first["parts"]] == [30, 70]
        assert site.records.count(actor, "payment_plan") == 2
        (payment,) = site.records.list(actor, "payment").rows
        assert payment["payment_plan"] == made[0]["id"]
        assert _count(site, "crm_audit", entity="payment_plan") == history
        assert _count(site, "crm_audit", entity="instalment") == 0
        (slip,) = site.attachments.list(actor, "payment_plan", made[0]["id"])
        assert b"".join(site.attachments.content(actor, slip.key)[1]) == b"bank slip"
        # The counter and the ids go on: no number and no deleted record's id given again.
        fourth = site.records.create(actor, "payment_plan", {"name": "extra", "amount": "5"})
        assert fourth["number"] == "FK-00004" and fourth["id"] > made[2]["id"]
        assert plan_migration(site.engine, site.registry, site.schema).is_empty
    finally:
        site.close()


def test_an_entity_cannot_be_renamed_from_one_still_defined(tmp_path):
    packs = tmp_path / "packs"
    write_pack(packs, "billing", {"entities/instalment.yaml": INSTALMENT,
                                  "entities/payment_plan.yaml": PAYMENT_PLAN})
    with pytest.raises(DefinitionError) as caught:
        load_registry(["billing"], search_paths=[packs])
    assert "'instalment' is still an entity here" in str(caught.value)
