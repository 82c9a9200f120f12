"""Workflow definitions: what `crm check` says about a wrong one, and what a right one builds.

Each malformed case is a small pack whose workflow file has one mistake;
the line asserted is found by a marker in the text (the line holding it),
so the cases stay readable.
"""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from engine.errors import DefinitionError
from engine.metadata.durations import BusinessHours, Sla, format_duration, parse_duration
from engine.metadata.loader import load_registry
from engine.metadata.workflow_model import workflow_for
from engine.testing import write_pack
from tests.workflow_pack import ENTITY_FILES as ENTITIES

FLOW = """
workflow: deal_flow
entity: deal
label: {en: Deals, zh: 商机}
probability_field: probability
figures: {value: amount, close_date: close_on, lost_reason: lost_reason}
stages:
  new: {label: {en: New, zh: 新建}, probability: 10}
  offer: {label: {en: Offer, zh: 报价}, probability: 50, requires: [amount]}
  won: {category: won}
  lost: {category: lost}
transitions:
  send: {from: new, to: offer}
  win: {from: offer, to: won, guard: "amount > 0"}
  lose: {from: "*", to: lost, fields: [lost_reason]}
"""


def flow(old: str = "", new: str = "", *, text: str = FLOW) -> str:
    """The good flow with one piece replaced (the mistake under test)."""
    if old:
        assert old in text, old
    return text.replace(old, new) if old else text


def problems_of(tmp_path, files, *, overlay=None):
    write_pack(tmp_path, "p", {**ENTITIES, **files})
    overlay_dir = None
    if overlay:
        overlay_dir = tmp_path / "custom"
        overlay_dir.mkdir()
        for name, content in overlay.items():
            (overlay_dir / name).write_text(textwrap.dedent(content).lstrip(), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_registry(["p"], search_paths=[tmp_path], overlay_dir=overlay_dir)
    return [p for p in caught.value.problems if p.severity == "error"]


def line_of(text: str, marker: str) -> int:
    """The 1-based line of the file text holding ``marker`` (``^x``: the line starting with x)."""
    lines = textwrap.dedent(text).lstrip().splitlines()
    found = [i for i, line in enumerate(lines, start=1)
             if (line.startswith(marker[1:]) if marker.startswith("^") else marker in line)]
    assert len(found) == 1, f"marker {marker!r} found on lines {found}"
    return found[0]


WF = "packs/p/workflows/deal.yaml"

# (id, workflow text, marker on the wrong line, words expected in the message)
CASES = [
    ("unknown entity", flow("entity: deal", "entity: dael"), "entity: dael",
     ["no entity 'dael'", "did you mean 'deal'"]),
    ("to names an unknown stage", flow("to: won, guard", "to: wn, guard"), "to: wn",
     ["'to' names an unknown stage 'wn'", "did you mean 'won'"]),
    ("from names an unknown stage",
     flow("send: {from: new, to: offer}", "send:\n    from: [nwe]\n    to: offer"), "[nwe]",
     ["'from' names an unknown stage 'nwe'", "did you mean 'new'"]),
    ("a stage no transition reaches",
     flow("  lost: {category: lost}", "  lost: {category: lost}\n  void: {category: lost}"),
     "void:", ["no transition leads to stage 'void'"]),
    ("an open dead end",
     flow("  won: {category: won}", "  won: {category: won}\n  limbo: {probability: 5}",
          ).replace("lose: {from: \"*\"", "park: {from: offer, to: limbo}\n  lose: {from: [new, offer]"),
     "limbo: {", ["stage 'limbo' is open but no transition leaves it", "category: won"]),
    ("guard names an unknown field", flow('guard: "amount > 0"', 'guard: "amout > 0"'),
     "amout", ["the guard unknown field 'amout'", "did you mean 'amount'"]),
    ("guard does not parse", flow('guard: "amount > 0"', 'guard: "amount >"'), "amount >\"",
     ["the guard does not parse"]),
    ("requires names an unknown field", flow("requires: [amount]", "requires: [amont]"),
     "amont", ["'requires' names an unknown field 'amont'", "did you mean 'amount'"]),
    ("transition fields name an unknown field",
     flow("fields: [lost_reason]", "fields: [lost_reasn]"), "lost_reasn",
     ["unknown field 'lost_reasn'", "did you mean 'lost_reason'"]),
    ("mapping names an unknown target field",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n      - create:\n"
          "          entity: contract\n          values: {titel: name}"),
     "titel", ["'titel' is not a field of contract", "did you mean 'title'"]),
    ("mapping expression names an unknown field",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n      - create:\n"
          "          entity: contract\n          values: {title: nmae}"),
     "nmae", ["the mapping unknown field 'nmae'", "did you mean 'name'"]),
    ("created record misses a required field",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n      - create:\n"
          "          entity: contract\n          values: {amount: amount}"),
     "values: {amount", ["the new contract needs 'title'"]),
    ("create names an unknown entity",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - create: {entity: contrakt}"),
     "contrakt", ["no entity 'contrakt'", "did you mean 'contract'"]),
    ("link is not a reference back",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - follow_up: {entity: task, due_in: 2d, link: subject,"
          " values: {subject: name}}"),
     "link: subject", ["'subject' must be a reference to deal"]),
    ("follow-up without a due field",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - follow_up: {entity: contract, due_in: 2d, values: {title: name}}"),
     "follow_up", ["due time goes into 'due_at'", "contract has no such field"]),
    ("set on the stage field",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - set: {stage: lost}"),
     "set: {stage", ["'stage' is the workflow's own field"]),
    ("set a value that does not fit",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - set: {probability: lots}"),
     "lots", ["does not fit the field", "whole number"]),
    ("two actions in one item",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - {set: {probability: 100}, hook: on_won}"),
     "hook: on_won", ["one action per list item"]),
    ("notify an unknown recipient",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - notify: {to: [ownr], message: Won}"),
     "ownr", ["'ownr' is not someone to notify", "did you mean 'owner'"]),
    ("notify names an unknown field",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - notify: {to: [owner], message: '{nam} was won'}"),
     "{nam}", ["unknown field '{nam}'", "did you mean 'name'"]),
    ("hook without hooks.py",
     flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
          "      - hook: on_won"),
     "hook: on_won", ["packs/p/hooks.py does not exist: write 'def on_won(context): ...'"]),
    ("duplicate transitions",
     flow("  lose: {from", "  offer_again: {from: new, to: offer}\n  lose: {from"),
     "offer_again", ["transitions 'send' and 'offer_again' both lead from 'new' to 'offer'"]),
    ("two initial stages",
     flow("probability: 50, requires", "probability: 50, initial: true, requires").replace(
         "probability: 10}", "probability: 10, initial: true}"),
     "offer: {", ["'new' and 'offer' are both marked initial"]),
    ("initial stage is closed",
     flow("  new: {label: {en: New, zh: 新建}, probability: 10}\n", "").replace(
         "  won: {category: won}", "  won: {category: won, initial: true}").replace(
         "  send: {from: new, to: offer}\n", "  start: {from: lost, to: offer}\n"),
     "won: {", ["a won stage"]),
    ("a won stage at less than 100%", flow("won: {category: won}",
                                           "won: {category: won, probability: 90}"),
     "probability: 90", ["a won stage counts at 100%"]),
    ("business-hours SLA without business hours",
     flow("probability: 10}", "probability: 10, sla: {within: 8h, business_hours: true}}"),
     "business_hours: true", ["declares no 'business_hours:'"]),
    ("figures value is not a number", flow("value: amount", "value: name"),
     "value: name", ["'name' is a string field", "needs a number field"]),
    ("guard_message without a guard",
     flow("  send: {from: new, to: offer}", "  send: {from: new, to: offer, guard_message: Hi}"),
     "guard_message", ["this transition has no 'guard'"]),
    ("a duration written in words", flow("probability: 10}", "probability: 10, sla: 24 hours}"),
     "24 hours", ["not a valid duration", "such as 90m, 24h, 3d"]),
    ("a misspelled stage option", flow("probability: 10}", "probability: 10, color: '#fff'}"),
     "color", ["unknown key 'color'", "did you mean 'colour'"]),
    ("stages and pipelines together",
     "workflow: w\nentity: deal\npipelines:\n  a:\n    stages: {x: {}, y: {category: won}}\n"
     "    transitions: {go: {from: x, to: y}}\nstages:\n  z: {}\n", "^stages:", ["'stages:' belongs inside each pipeline"]),
]


@pytest.mark.parametrize(("text", "marker", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_workflow_problem(tmp_path, text, marker, words):
    problems = problems_of(tmp_path, {"workflows/deal.yaml": text})
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert (problem.file, problem.line) == (WF, line_of(text, marker)), str(problem)
    for word in words:
        assert word in problem.message, str(problem)


def test_stage_field_declared_by_the_entity_is_a_clash(tmp_path):
    files = {**ENTITIES, "entities/deal.yaml": ENTITIES["entities/deal.yaml"].replace(
        "      note: {type: text}", "      stage: {type: string}"), "workflows/deal.yaml": FLOW}
    write_pack(tmp_path, "p", files)
    with pytest.raises(DefinitionError) as caught:
        load_registry(["p"], search_paths=[tmp_path])
    problems = [p for p in caught.value.problems if p.severity == "error"]
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].file == WF and problems[0].line == 1
    line = line_of(files["entities/deal.yaml"], "stage: {type: string}")
    assert f"already declares a field 'stage' (packs/p/entities/deal.yaml, line {line})" in str(
        problems[0])
    assert "remove that field from the entity" in problems[0].message


def test_two_workflows_for_one_entity(tmp_path):
    other = FLOW.replace("workflow: deal_flow", "workflow: deal_flow_2")
    problems = problems_of(tmp_path, {"workflows/deal.yaml": FLOW, "workflows/other.yaml": other})
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].file == "packs/p/workflows/other.yaml" and problems[0].line == 2
    assert "already has workflow 'deal_flow'" in problems[0].message


def test_a_workflow_defined_twice_needs_override(tmp_path):
    problems = problems_of(tmp_path, {"workflows/deal.yaml": FLOW, "workflows/other.yaml": FLOW})
    assert len(problems) == 1, [str(p) for p in problems]
    assert problems[0].file == "packs/p/workflows/other.yaml" and problems[0].line == 1
    assert "already defined in packs/p/workflows/deal.yaml (line 1)" in problems[0].message
    assert "override: true" in problems[0].message


def test_hook_function_that_does_not_exist(tmp_path):
    text = flow("  won: {category: won}", "  won:\n    category: won\n    on_enter:\n"
                "      - hook: on_wn")
    problems = problems_of(tmp_path, {"workflows/deal.yaml": text,
                                      "hooks.py": "def on_won(context):\n    return None\n"})
    assert len(problems) == 1, [str(p) for p in problems]
    assert (problems[0].file, problems[0].line) == (WF, line_of(text, "on_wn"))
    assert "has no function 'on_wn' (did you mean 'on_won'?)" in problems[0].message


def test_a_stage_reached_only_from_an_unreachable_one(tmp_path):
    text = flow("  lost: {category: lost}",
                "  lost: {category: lost}\n  hold: {category: lost}\n  gone: {category: lost}"
                ).replace("  lose: {from", "  drop: {from: hold, to: gone}\n  lose: {from")
    problems = problems_of(tmp_path, {"workflows/deal.yaml": text})
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (line_of(text, "hold: {"), "no transition leads to stage 'hold'"),
        (line_of(text, "gone: {"), "stage 'gone' cannot be reached from the initial stage 'new'"),
    ]


def test_every_problem_of_a_workflow_is_reported_at_once(tmp_path):
    text = flow("to: won, guard", "to: wn, guard").replace("requires: [amount]",
                                                           "requires: [amont]")
    problems = problems_of(tmp_path, {"workflows/deal.yaml": text})
    assert [p.line for p in problems] == sorted(
        [line_of(text, "amont"), line_of(text, "to: wn")])


# -- what a right definition builds ----------------------------------------------------


def test_the_workflow_creates_its_stage_field(tmp_path):
    deal = ENTITIES["entities/deal.yaml"] + """
        indexes:
          - fields: [stage, close_on]
    """
    write_pack(tmp_path, "p", {**ENTITIES, "entities/deal.yaml": deal, "workflows/deal.yaml": FLOW})
    registry = load_registry(["p"], search_paths=[tmp_path])
    stage = registry.entity("deal").fields["stage"]
    assert stage.type == "choice" and stage.index and stage.default == "new"
    assert list(stage.choices) == ["new", "offer", "won", "lost"]
    assert stage.choices["offer"].get("zh") == "报价"
    assert stage.origin.file == WF
    workflow = workflow_for(registry.workflows, "deal")
    pipeline = workflow.pipeline(None)
    assert pipeline.initial == "new"
    assert pipeline.stages["won"].probability == 100 and pipeline.stages["lost"].probability == 0
    assert [t.key for t in pipeline.transitions_from("offer")] == ["win", "lose"]
    assert pipeline.transition("won", "lost") is None  # "*" leaves open stages only
    assert registry.snapshot()["workflows"]["deal_flow"]["pipelines"]["default"]["initial"] == "new"


def test_transition_exposes_roles_and_where_it_is_written(tmp_path):
    text = flow("win: {from: offer, to: won,", "win: {from: offer, to: won, roles: [manager],")
    write_pack(tmp_path, "p", {**ENTITIES, "workflows/deal.yaml": text,
                               "roles.yaml": "roles:\n  manager: {label: Manager}\n"})
    registry = load_registry(["p"], search_paths=[tmp_path])
    workflow = registry.workflows["deal_flow"]
    win = workflow.pipeline(None).transitions["win"]
    assert win.roles == ("manager",)
    problem = win.problem("no role 'manager'", "roles", 0)
    assert (problem.file, problem.line, problem.path) == (
        WF, line_of(text, "roles: [manager]"), "transitions.win.roles[0]")
    assert [(role, place.path) for role, place in workflow.role_references()] == [
        ("manager", ("transitions", "win", "roles", 0))]


def test_pipelines_and_a_site_override(tmp_path):
    pipelines = """
        workflow: deal_flow
        entity: deal
        pipelines:
          projects:
            label: {en: Projects, zh: 项目}
            stages:
              lead: {probability: 5}
              bid: {probability: 40}
              won: {category: won}
              lost: {category: lost}
            transitions:
              bid: {from: lead, to: bid}
              win: {from: bid, to: won}
              lose: {from: "*", to: lost}
          services:
            default: true
            stages:
              call: {probability: 20}
              won: {category: won}
              lost: {category: lost}
            transitions:
              win: {from: call, to: won}
              lose: {from: call, to: lost}
    """
    write_pack(tmp_path, "p", {**ENTITIES, "workflows/deal.yaml": FLOW})
    overlay = tmp_path / "custom"
    overlay.mkdir()
    (overlay / "deal_flow.yaml").write_text(
        textwrap.dedent(pipelines).lstrip().replace("entity: deal", "entity: deal\noverride: true"),
        encoding="utf-8")
    registry = load_registry(["p"], search_paths=[tmp_path], overlay_dir=overlay)
    workflow = registry.workflows["deal_flow"]
    assert list(workflow.pipelines) == ["projects", "services"]
    assert workflow.default_pipeline == "services" and workflow.pipeline_field == "pipeline"
    deal = registry.entity("deal")
    assert list(deal.fields["pipeline"].choices) == ["projects", "services"]
    assert deal.fields["pipeline"].default == "services"
    assert list(deal.fields["stage"].choices) == ["lead", "bid", "won", "lost", "call"]


def test_the_core_pack_flow():
    registry = load_registry(["core"])
    workflow = workflow_for(registry.workflows, "opportunity")
    pipeline = workflow.pipeline(None)
    assert list(pipeline.stages) == ["initial", "needs", "proposal", "negotiation", "won", "lost"]
    assert [s.probability for s in pipeline.stages.values()] == [10, 30, 60, 80, 100, 0]
    assert pipeline.transitions["lose"].fields == ("lost_reason",)
    assert registry.entity("opportunity").fields["lost_reason"].type == "choice"
    assert pipeline.transition("lost", "negotiation").key == "reopen"
    assert pipeline.transitions["reopen"].roles == ("manager", "owner")


# -- durations ---------------------------------------------------------------------------


def test_durations_and_business_hours():
    assert parse_duration("90m") == dt.timedelta(minutes=90)
    assert parse_duration("1d12h") == dt.timedelta(hours=36)
    assert format_duration(dt.timedelta(hours=36)) == "1d12h"
    with pytest.raises(ValueError):
        parse_duration("24 hours")
    hours = BusinessHours(timezone="Asia/Shanghai")
    friday_5pm = dt.datetime(2026, 3, 13, 9, 0, tzinfo=dt.UTC)  # 17:00 in Shanghai
    due = Sla(parse_duration("8h"), "8h", business_hours=True).due(friday_5pm, hours)
    # one hour on Friday, seven on Monday from 09:00 → Monday 16:00 Shanghai = 08:00 UTC
    assert due == dt.datetime(2026, 3, 16, 8, 0, tzinfo=dt.UTC)
    assert Sla(parse_duration("24h"), "24h").due(friday_5pm, hours) == friday_5pm + dt.timedelta(
        hours=24)
