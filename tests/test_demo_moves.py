"""Demo entries that move a record created earlier (``move:``), by ref or by its field values."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import DefinitionError
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()
FILES = {
    "entities/task.yaml": """
        entity: task
        fields:
          title: {type: string, required: true}
          code: {type: string}
    """,
    "workflows/task.yaml": """
        workflow: task_flow
        entity: task
        stages:
          open: {}
          doing: {}
          done: {category: won}
        transitions:
          start: {from: open, to: doing}
          finish: {from: doing, to: done}
    """,
}


def site_with_demo(tmp_path, db_url, demo: str):
    files = dict(FILES)
    files["demo/data.yaml"] = demo
    pack = write_pack(tmp_path / "packs", "tasks", files)
    site = open_migrated(write_site(tmp_path / "site", db_url, ["tasks"], pack_paths=["../packs"]),
                         clock=FixedClock(dt.datetime(2026, 11, 24, tzinfo=dt.UTC)))
    return site, pack


def test_move_entries_take_earlier_records_further(tmp_path, db_url):
    site, pack = site_with_demo(tmp_path, db_url, """
        records:
          - {entity: task, ref: a, values: {title: A}}
          - {entity: task, values: {title: B, code: b-1}, transitions: [doing]}
          - {entity: task, move: "@a", transitions: [doing, done]}
          - {entity: task, move: {code: b-1}, transitions: [done]}
    """)
    try:
        load_demo(site.records, SYSTEM, [pack], workflows=site.workflows)
        stages = {r["title"]: r["stage"] for r in site.records.list(SYSTEM, "task").rows}
        assert stages == {"A": "done", "B": "done"}
    finally:
        site.close()


@pytest.mark.parametrize(("move", "count"), [("{code: none}", 0), ("{title: T}", 2)])
def test_a_move_must_name_exactly_one_record(tmp_path, db_url, move, count):
    site, pack = site_with_demo(tmp_path, db_url, f"""
        records:
          - {{entity: task, values: {{title: T}}}}
          - {{entity: task, values: {{title: T}}}}
          - {{entity: task, move: {move}, transitions: [doing]}}
    """)
    try:
        with pytest.raises(DefinitionError) as caught:
            load_demo(site.records, SYSTEM, [pack], workflows=site.workflows)
        assert f"matches {count} task records, not one" in str(caught.value)
    finally:
        site.close()
