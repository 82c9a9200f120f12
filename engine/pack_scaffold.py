"""``crm pack new``: a working pack to start from, that passes its checks and its test.

The skeleton has one of everything a pack usually holds — a manifest, an
entity with a save hook, a stage flow, roles, a view, demo data and a test
that uses the pack test kit — so a developer edits working files instead of
writing them from the reference.  Every name in it derives from the pack's
name, so a new pack never collides with the built-in ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CrmError, ValidationFailed

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Pack names longer than this would make entity keys past the 40-character limit.
MAX_NAME = 30


@dataclass(frozen=True)
class Names:
    pack: str
    entity: str
    workflow: str
    staff: str
    lead: str
    title: str


def _names(pack: str) -> Names:
    return Names(pack=pack, entity=f"{pack}_request", workflow=f"{pack}_flow",
                 staff=f"{pack}_staff", lead=f"{pack}_lead",
                 title=pack.replace("_", " ").title())


def _files(n: Names) -> dict[str, str]:
    return {
        "pack.yaml": f"""\
# The manifest: the pack's name (the same as its folder), version and what it builds on.
name: {n.pack}
version: 0.1.0
label: {{en: {n.title}, zh: {n.title}}}
description:
  en: Requests that move from new to done. Rename, extend and replace at will.
  zh: 从新建到完成的请求。可随意改名、扩展和替换。
depends: []
license: MIT
""",
        "README.md": f"""\
# {n.title}

A VisionCRM pack. Its files:

- `pack.yaml` — name, version, dependencies
- `entities/{n.entity}.yaml` — the records it keeps (docs/reference.md lists every key)
- `workflows/{n.entity}.yaml` — the stages they move through (docs/workflows.md)
- `roles.yaml` — who may do what (docs/permissions.md)
- `views/{n.entity}.yaml` — how they show in the web UI (docs/views.md)
- `hooks.py` — Python run when a record is saved (docs/hooks.md)
- `demo/data.yaml` — demo records (`crm demo`)
- `tests/test_{n.pack}.py` — its test (docs/pack_testing.md): `pytest tests`

Use it in a site: add the folder that holds this pack to `pack_paths` in the
site's `crm.yaml`, add `{n.pack}` to `packs`, then `crm check` and `crm migrate`.
""",
        f"entities/{n.entity}.yaml": f"""\
# A request: what someone asked for, how much it is worth, and its notes.
entity: {n.entity}
label: {{en: Request, zh: 请求}}
plural: {{en: Requests, zh: 请求}}
title_field: title
fields:
  title:
    type: string
    required: true
    max_length: 120
    searchable: true
    label: {{en: Title, zh: 标题}}
  requested_by:
    type: string
    label: {{en: Requested by, zh: 请求人}}
  amount:
    type: decimal
    precision: 12
    scale: 2
    min: 0
    label: {{en: Amount, zh: 金额}}
  resolution:
    type: text
    label: {{en: Resolution, zh: 处理结果}}
hooks:
  before_save: tidy_title
""",
        f"workflows/{n.entity}.yaml": f"""\
# How a request moves: new → in progress → done (or cancelled on the way).
workflow: {n.workflow}
entity: {n.entity}
label: {{en: Requests, zh: 请求流程}}
stages:
  new: {{label: {{en: New, zh: 新建}}}}
  in_progress: {{label: {{en: In progress, zh: 处理中}}, sla: 2d}}
  done: {{label: {{en: Done, zh: 已完成}}, category: won, requires: [resolution]}}
  cancelled: {{label: {{en: Cancelled, zh: 已取消}}, category: lost}}
transitions:
  start: {{from: new, to: in_progress, label: {{en: Start, zh: 开始处理}}}}
  finish:
    from: in_progress
    to: done
    label: {{en: Finish, zh: 完成}}
    roles: [{n.staff}, {n.lead}]
  cancel: {{from: [new, in_progress], to: cancelled, label: {{en: Cancel, zh: 取消}},
           roles: [{n.lead}]}}
""",
        "roles.yaml": f"""\
# Staff work on their own requests; leads see and manage them all.
roles:
  {n.staff}:
    label: {{en: {n.title} staff, zh: {n.title} 员工}}
    entities:
      {n.entity}: {{rights: [read, create, update, transition], scope: own}}
  {n.lead}:
    label: {{en: {n.title} lead, zh: {n.title} 主管}}
    entities:
      {n.entity}: {{rights: all, scope: all}}
""",
        f"views/{n.entity}.yaml": f"""\
# The list and form of requests in the web UI.
view: {n.entity}
list:
  columns: [title, stage, requested_by, amount, owner]
  sort: -updated_at
  filters: [stage, amount]
  search: [title, requested_by]
form:
  sections:
    - section: request
      label: {{en: Request, zh: 请求}}
      fields: [title, requested_by, amount]
    - section: outcome
      label: {{en: Outcome, zh: 结果}}
      fields: [resolution]
""",
        "hooks.py": f'''\
"""Hooks of the {n.pack} pack: plain functions named in the entities' ``hooks:``.

Each gets one context (see docs/hooks.md): ``context.values`` is the record
being saved, ``context.error(field, text)`` refuses the save with a message
next to that field, and raising anything undoes the whole save.  The context
also carries ``records`` and ``workflows`` (with ``conn``, to stay in the
save's transaction); everything else a pack needs of the engine is in
``engine.pack_api``, the one engine module a pack imports.
"""

from engine.pack_api import RecordHookContext


def tidy_title(context: RecordHookContext) -> None:
    """Titles are stored without runs of spaces, and need a letter or a digit."""
    title = context.values.get("title")
    if title is None:
        return  # the engine reports the required field
    context.values["title"] = " ".join(title.split())
    if not any(ch.isalnum() for ch in title):
        context.error("title", {{"en": "Write a title with words.", "zh": "标题需要文字。"}})
''',
        "demo/data.yaml": f"""\
# Demo records, created through the record service (and moved through the workflow).
records:
  - entity: {n.entity}
    values: {{title: First request, requested_by: Ann, amount: 120}}
  - entity: {n.entity}
    values: {{title: A finished request, requested_by: Bo, amount: 80}}
    transitions:
      - in_progress
      - {{to: done, values: {{resolution: Done on the first visit.}}}}
""",
        f"tests/test_{n.pack}.py": f'''\
"""The {n.pack} pack's own test, on the database CRM_TEST_DATABASE names (SQLite by default).

Uses the VisionCRM pytest plugin's ``crm_site`` fixture (docs/pack_testing.md).
"""

from pathlib import Path

import pytest

from engine.pack_api import PermissionDenied, TransitionRefused, ValidationFailed

PACKS = Path(__file__).resolve().parents[2]  # the folder holding the pack folder


@pytest.fixture
def site(crm_site):
    return crm_site(["{n.pack}"], pack_paths=[PACKS])


def test_a_request_moves_from_new_to_done(site):
    staff = site.actor("{n.staff}")
    request = site.create(staff, "{n.entity}", title="  Fix   the  door ", amount=40)
    assert request["title"] == "Fix the door"  # the before_save hook tidied it
    assert request["stage"] == "new"
    site.transition(staff, "{n.entity}", request, "in_progress")
    with pytest.raises(TransitionRefused):
        site.transition(staff, "{n.entity}", request, "done")  # a resolution is required
    site.advance(days=1)
    done = site.transition(staff, "{n.entity}", request, "done", {{"resolution": "Fixed"}})
    assert done["stage"] == "done"
    assert [h["to_stage"] for h in site.stage_history(staff, "{n.entity}", request)] == [
        "in_progress", "done"]


def test_the_hook_refuses_a_title_without_words(site):
    with pytest.raises(ValidationFailed) as caught:
        site.create(site.actor("{n.staff}"), "{n.entity}", title="???")
    assert caught.value.errors["title"] == ["Write a title with words."]
    assert site.list(site.admin, "{n.entity}") == []


def test_only_leads_cancel(site):
    staff, lead = site.actor("{n.staff}"), site.actor("{n.lead}")
    request = site.create(staff, "{n.entity}", title="Paint the wall")
    with pytest.raises(TransitionRefused):
        site.transition(staff, "{n.entity}", request, "cancelled")
    assert site.transition(lead, "{n.entity}", request, "cancelled")["stage"] == "cancelled"
    with pytest.raises(PermissionDenied):
        site.delete(staff, "{n.entity}", request)


def test_demo_data_loads(site):
    assert site.load_demo() == 2
    assert sorted(r["stage"] for r in site.list(site.admin, "{n.entity}")) == ["done", "new"]
''',
    }


def new_pack(name: str, folder: Path) -> Path:
    """Write the skeleton of pack ``name`` into ``folder/name``; its root.

    Refuses a name that is not a pack name and a folder that exists, so it
    never overwrites work.
    """
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise ValidationFailed({"name": [
            f"'{name}' is not a pack name: lowercase letters, digits and _, starting with a "
            f"letter, at most {MAX_NAME} characters"]})
    root = folder / name
    if root.exists():
        raise CrmError(f"{root} already exists; choose another name or folder.")
    for relative, text in _files(_names(name)).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
