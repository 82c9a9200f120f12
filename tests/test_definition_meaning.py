"""Definitions that are well-formed but wrong in meaning: each names its file and line.

The schema tests cover the shape of single files; these cover what only the
whole set of packs and overlays can tell (references, extensions,
expressions, reserved names, dependencies).
"""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from tests.support import write_pack

BASE = """
    entity: customer
    fields:
      name: {type: string, required: true}
      kind: {type: choice, choices: {a: A, b: B}}
"""


def problems_of(tmp_path, files, *, extra_packs=None, packs=("p",), overlay=None, depends=()):
    write_pack(tmp_path, "p", files, depends=depends)
    for name, (pack_files, pack_depends) in (extra_packs or {}).items():
        write_pack(tmp_path, name, pack_files, depends=pack_depends)
    overlay_dir = None
    if overlay:
        overlay_dir = tmp_path / "custom"
        overlay_dir.mkdir()
        for name, text in overlay.items():
            (overlay_dir / name).write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_registry(list(packs), search_paths=[tmp_path], overlay_dir=overlay_dir)
    return [p for p in caught.value.problems if p.severity == "error"]


def one(problems):
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


CASES = [
    # (id, files, (file, line), words expected in the message)
    (
        "reference to unknown entity",
        {"entities/deal.yaml": "entity: deal\nfields:\n  customer: {type: reference, to: custmer}\n",
         "entities/customer.yaml": BASE},
        ("packs/p/entities/deal.yaml", 3),
        ["unknown entity 'custmer'", "did you mean 'customer'"],
    ),
    (
        "reference without to",
        {"entities/deal.yaml": "entity: deal\nfields:\n  customer: {type: reference}\n"},
        ("packs/p/entities/deal.yaml", 3),
        ["needs 'to'"],
    ),
    (
        "option not for the type",
        {"entities/deal.yaml": "entity: deal\nfields:\n  due:\n    type: date\n    max_length: 10\n"},
        ("packs/p/entities/deal.yaml", 5),
        ["'max_length' does not apply to a date field"],
    ),
    (
        "choice without choices",
        {"entities/deal.yaml": "entity: deal\nfields:\n  stage: {type: choice}\n"},
        ("packs/p/entities/deal.yaml", 3),
        ["needs 'choices'"],
    ),
    (
        "default not among choices",
        {"entities/deal.yaml": "entity: deal\nfields:\n  stage:\n    type: choice\n    choices: {a: A}\n    default: z\n"},
        ("packs/p/entities/deal.yaml", 6),
        ["'z' is not one of the choices"],
    ),
    (
        "default of the wrong type",
        {"entities/deal.yaml": "entity: deal\nfields:\n  n:\n    type: integer\n    default: many\n"},
        ("packs/p/entities/deal.yaml", 5),
        ["expected a whole number"],
    ),
    (
        "computed without returns",
        {"entities/deal.yaml": "entity: deal\nfields:\n  a: {type: integer}\n  b: {type: computed, expression: a * 2}\n"},
        ("packs/p/entities/deal.yaml", 4),
        ["needs 'returns'"],
    ),
    (
        "computed expression names an unknown field",
        {"entities/deal.yaml": "entity: deal\nfields:\n  amount: {type: decimal}\n  w:\n    type: computed\n    returns: decimal\n    expression: amout * 2\n"},
        ("packs/p/entities/deal.yaml", 7),
        ["amout", "did you mean 'amount'"],
    ),
    (
        "expression does not parse",
        {"entities/deal.yaml": "entity: deal\nfields:\n  a: {type: integer}\n  b:\n    type: boolean\n    visible_if: \"a >\"\n"},
        ("packs/p/entities/deal.yaml", 6),
        ["does not parse"],
    ),
    (
        "expression uses a forbidden construct",
        {"entities/deal.yaml": "entity: deal\nfields:\n  a: {type: integer}\n  b:\n    type: integer\n    default_expression: \"__import__('os')\"\n"},
        ("packs/p/entities/deal.yaml", 6),
        ["does not parse"],
    ),
    (
        "required_if names unknown field",
        {"entities/deal.yaml": "entity: deal\nfields:\n  a: {type: integer}\n  b:\n    type: text\n    required_if: \"stage == 'lost'\"\n"},
        ("packs/p/entities/deal.yaml", 6),
        ["stage"],
    ),
    (
        "reserved field name",
        {"entities/deal.yaml": "entity: deal\nfields:\n  version: {type: integer}\n"},
        ("packs/p/entities/deal.yaml", 3),
        ["'version' is a column the engine adds"],
    ),
    (
        "reserved entity name",
        {"entities/user.yaml": "entity: user\nfields:\n  a: {type: integer}\n"},
        ("packs/p/entities/user.yaml", 1),
        ["'user' is a name the engine keeps"],
    ),
    (
        "double underscore in a field",
        {"entities/deal.yaml": "entity: deal\nfields:\n  a__b: {type: integer}\n"},
        ("packs/p/entities/deal.yaml", 3),
        ["may not contain '__'"],
    ),
    (
        "entity defined twice",
        {"entities/a.yaml": BASE, "entities/b.yaml": BASE},
        ("packs/p/entities/b.yaml", 1),
        ["already defined in packs/p/entities/a.yaml", "extend: customer"],
    ),
    (
        "extend an unknown entity",
        {"entities/a.yaml": BASE, "entities/b.yaml": "extend: custmer\nfields:\n  x: {type: integer}\n"},
        ("packs/p/entities/b.yaml", 1),
        ["no entity 'custmer' to extend", "did you mean 'customer'"],
    ),
    (
        "extension adds a field without type",
        {"entities/a.yaml": BASE, "entities/b.yaml": "extend: customer\nfields:\n  nmae: {required: false}\n"},
        ("packs/p/entities/b.yaml", 3),
        ["needs a 'type'", "did you mean to change 'name'"],
    ),
    (
        "extension changes a field's type",
        {"entities/a.yaml": BASE, "entities/b.yaml": "extend: customer\nfields:\n  name: {type: integer}\n"},
        ("packs/p/entities/b.yaml", 3),
        ["cannot be changed from 'string' to 'integer'"],
    ),
    (
        "remove a choice that does not exist",
        {"entities/a.yaml": BASE, "entities/b.yaml": "extend: customer\nremove_choices:\n  kind: [z]\n"},
        ("packs/p/entities/b.yaml", 3),
        ["has no choice 'z'"],
    ),
    (
        "sequence without counter",
        {"entities/deal.yaml": "entity: deal\nfields:\n  no: {type: sequence, sequence_pattern: \"SO-{YYYY}\"}\n"},
        ("packs/p/entities/deal.yaml", 3),
        ["must contain the counter"],
    ),
    (
        "sequence with unknown token",
        {"entities/deal.yaml": "entity: deal\nfields:\n  no: {type: sequence, sequence_pattern: \"SO-{YEAR}-{###}\"}\n"},
        ("packs/p/entities/deal.yaml", 3),
        ["unknown part '{YEAR}'"],
    ),
    (
        "lines inside lines",
        {"entities/deal.yaml": "entity: deal\nfields:\n  items:\n    type: lines\n    fields:\n      sub:\n        type: lines\n        fields: {a: {type: integer}}\n"},
        ("packs/p/entities/deal.yaml", 7),
        ["cannot be part of lines"],
    ),
    (
        "min above max",
        {"entities/deal.yaml": "entity: deal\nfields:\n  n:\n    type: integer\n    min: 10\n    max: 1\n"},
        ("packs/p/entities/deal.yaml", 5),
        ["'min' (10) is larger than 'max' (1)"],
    ),
    (
        "bad regular expression",
        {"entities/deal.yaml": "entity: deal\nfields:\n  code:\n    type: string\n    pattern: \"[a-\"\n"},
        ("packs/p/entities/deal.yaml", 5),
        ["not a valid regular expression"],
    ),
    (
        "index on an unknown field",
        {"entities/deal.yaml": "entity: deal\nfields:\n  name: {type: string}\nindexes:\n  - fields: [nmae]\n"},
        ("packs/p/entities/deal.yaml", 5),
        ["unknown field 'nmae'", "did you mean 'name'"],
    ),
    (
        "title_field unknown",
        {"entities/deal.yaml": "entity: deal\ntitle_field: title\nfields:\n  name: {type: string}\n"},
        ("packs/p/entities/deal.yaml", 2),
        ["unknown field 'title'"],
    ),
    (
        "set_null on a required reference",
        {"entities/a.yaml": BASE, "entities/deal.yaml": "entity: deal\nfields:\n  c:\n    type: reference\n    to: customer\n    required: true\n    on_delete: set_null\n"},
        ("packs/p/entities/deal.yaml", 7),
        ["'set_null' cannot be used on a required field"],
    ),
    (
        "renamed_from a field still present",
        {"entities/deal.yaml": "entity: deal\nfields:\n  a: {type: integer}\n  b:\n    type: integer\n    renamed_from: a\n"},
        ("packs/p/entities/deal.yaml", 6),
        ["'a' is still a field here"],
    ),
]


@pytest.mark.parametrize(("files", "where", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_meaning_problem(tmp_path, files, where, words):
    problem = one(problems_of(tmp_path, files))
    assert (problem.file, problem.line) == where, str(problem)
    for word in words:
        assert word in problem.message, str(problem)


def test_missing_pack_is_reported_where_it_is_asked_for(tmp_path):
    problem = one(problems_of(tmp_path, {"entities/a.yaml": BASE}, depends=("crore",),
                              extra_packs={"core": ({"entities/c.yaml": "entity: c\nfields:\n  a: {type: integer}\n"}, ())}))
    assert problem.file == "packs/p/pack.yaml"
    assert "no pack named 'crore'" in problem.message
    assert "did you mean 'core'" in problem.message


def test_circular_dependencies_are_spelled_out(tmp_path):
    problems = problems_of(
        tmp_path, {"entities/a.yaml": BASE}, depends=("q",),
        extra_packs={"q": ({}, ("r",)), "r": ({}, ("p",))},
    )
    assert any("in a circle: p → q → r → p" in p.message for p in problems), [str(p) for p in problems]


def test_extending_without_depending_is_refused(tmp_path):
    problem = one(problems_of(
        tmp_path, {"entities/a.yaml": BASE}, packs=("p", "q"),
        extra_packs={"q": ({"entities/x.yaml": "extend: customer\nfields:\n  x: {type: integer}\n"}, ())},
    ))
    assert problem.file == "packs/q/entities/x.yaml"
    assert "does not depend on 'p'" in problem.message


def test_overlay_problem_points_at_the_overlay(tmp_path):
    problem = one(problems_of(
        tmp_path, {"entities/a.yaml": BASE},
        overlay={"customer.yaml": "extend: customer\nfields:\n  vip:\n    type: boolean\n    default: perhaps\n"},
    ))
    assert (problem.file, problem.line) == ("custom/customer.yaml", 5)


def test_all_problems_of_a_run_are_reported_together(tmp_path):
    problems = problems_of(
        tmp_path,
        {
            "entities/a.yaml": "entity: a\nfields:\n  r: {type: reference, to: nowhere}\n  n: {type: integer, default: x}\n",
            "entities/b.yaml": "entity: b\nfields:\n  d: {type: date, max_length: 3}\n",
        },
    )
    assert [(p.file, p.line) for p in problems] == [
        ("packs/p/entities/a.yaml", 3),
        ("packs/p/entities/a.yaml", 4),
        ("packs/p/entities/b.yaml", 3),
    ]


def test_extensions_merge_fields_choices_and_labels(tmp_path):
    write_pack(tmp_path, "p", {"entities/a.yaml": BASE})
    write_pack(
        tmp_path, "q",
        {"entities/x.yaml": """
            extend: customer
            label: {en: Client, zh: 客户}
            fields:
              name: {max_length: 80, label: {en: Company name, zh: 公司名称}}
              kind: {choices: {c: {en: C, zh: 丙}}}
              wechat: {type: string}
            remove_choices:
              kind: [a]
        """},
        depends=("p",),
    )
    registry = load_registry(["q"], search_paths=[tmp_path])
    customer = registry.entity("customer")
    assert customer.label.get("zh") == "客户"
    assert customer.fields["name"].max_length == 80
    assert customer.fields["name"].required is True
    assert customer.fields["name"].label.get("zh") == "公司名称"
    assert list(customer.fields["kind"].choices) == ["b", "c"]
    assert list(customer.fields) == ["name", "kind", "wechat"]
    assert customer.extended_by == ("q",)
