"""What `crm check` tells a consultant about a malformed definition file.

Every case is written inline so that the line numbers asserted are the line
numbers you can count in the text: the first line after the opening quotes
is line 1.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.errors import DefinitionError, Problem
from engine.metadata.schema_check import (
    DISCRIMINATORS,
    SCHEMA_DIR,
    SCHEMA_KINDS,
    all_schemas,
    document_kind,
    load_schema,
    schema_problems,
)
from engine.metadata.yaml_source import SourceDocument, load_yaml, load_yaml_text, render_path

PACKS = Path(__file__).resolve().parent.parent / "packs"


def text(source: str) -> str:
    """Dedent and drop the newline right after the opening quotes: line 1 is the first line."""
    return textwrap.dedent(source).removeprefix("\n")


def check(source: str, kind: str | None = None) -> list[Problem]:
    """Everything `crm check` reports for one file: loading problems, then schema problems."""
    try:
        doc = load_yaml_text(text(source), "def.yaml")
    except DefinitionError as error:
        return error.problems
    return schema_problems(doc, kind or document_kind(doc) or "entity")


# -- one malformed document each: (source, kind, line, column, path, words) ----------------

CASES: dict[str, tuple[str, str | None, int, int | None, str, list[str]]] = {
    "yaml syntax error": (
        """
        entity: customer
        label: Name: Customer
        """,
        None, 2, 12, "",
        ["not valid YAML", "mapping values are not allowed here", "indentation", "quote"],
    ),
    "tab indentation": (
        "entity: customer\nfields:\n\tname: {type: string}\n",
        None, 3, 1, "", ["not valid YAML", "tab", "spaces"],
    ),
    "duplicate key": (
        """
        entity: customer
        fields:
          name: {type: string}
          phone: {type: phone}
          name: {type: text}
        """,
        None, 5, 3, "fields.name", ["'name' appears twice", "first on line 3"],
    ),
    "empty file": ("", None, 1, 1, "", ["the file is empty"]),
    "only comments": ("# nothing yet\n", None, 1, 1, "", ["the file is empty"]),
    "two documents": (
        """
        entity: customer
        fields: {name: {type: string}}
        ---
        entity: contact
        """,
        None, 3, 1, "", ["second document", "exactly one"],
    ),
    "unclosed quote": (
        """
        entity: customer
        label: "Customer
        fields: {name: {type: string}}
        """,
        None, 2, 8, "", ["quoted value", "never closed"],
    ),
    "undefined alias": (
        """
        entity: customer
        fields:
          name: *text_field
        """,
        None, 3, 9, "", ["*text_field", "no anchor &text_field"],
    ),
    "unsupported tag": (
        """
        entity: customer
        fields:
          since: {type: date, default: !!timestamp 2024-01-01}
        """,
        None, 3, 32, "fields.since.default", ["!!timestamp", "not supported", "as text"],
    ),
    "not a mapping": (
        """
        - entity: customer
        - entity: contact
        """,
        None, 1, 1, "", ["expected a mapping starting with 'entity:', 'extend:'", "got a list"],
    ),
    "no discriminator": (
        """
        label: Customer
        fields: {name: {type: string}}
        """,
        None, 1, 1, "", ["expected a mapping starting with 'entity:', 'extend:'", "none"],
    ),
    "misspelled discriminator": (
        """
        # customers
        entiy: customer
        fields: {name: {type: string}}
        """,
        None, 2, 1, "entiy", ["starting with 'entity:'", "did you mean 'entity:'"],
    ),
    "unknown top key": (
        """
        entity: customer
        lable: {en: Customer}
        fields: {name: {type: string}}
        """,
        None, 2, 1, "lable",
        ["unknown key 'lable'", "did you mean 'label'", "allowed here: entity, label, plural"],
    ),
    "entity and extend together": (
        """
        entity: customer
        fields: {name: {type: string}}
        extend: contact
        """,
        None, 3, 1, "extend", ["'extend:' cannot be used together with 'entity:'"],
    ),
    "misspelled field option": (
        """
        entity: customer
        fields:
          name:
            type: string
            requird: true
        """,
        None, 5, 5, "fields.name.requird",
        ["unknown key 'requird'", "did you mean 'required'", "allowed here:", "max_length"],
    ),
    "misspelled field type": (
        """
        entity: customer
        fields:
          name:
            type: strng
        """,
        None, 4, 11, "fields.name.type",
        ["expected one of: string, text, integer", "got 'strng'", "did you mean 'string'"],
    ),
    "missing type": (
        """
        entity: customer
        fields:
          name:
            label: Name
        """,
        None, 3, 3, "fields.name", ["'type' is missing", "every field needs a type"],
    ),
    "field key uppercase": (
        """
        entity: customer
        fields:
          Name: {type: string}
        """,
        None, 3, 3, "fields.Name",
        ["'Name' is not a valid field key", "start with a lowercase letter", "try 'name'"],
    ),
    "field key starts with a digit": (
        """
        entity: customer
        fields:
          name: {type: string}
          2nd_phone: {type: phone}
        """,
        None, 4, 3, "fields.2nd_phone", ["'2nd_phone' is not a valid field key", "lowercase"],
    ),
    "field key with a hyphen": (
        """
        entity: contact
        fields:
          first-name: {type: string}
        """,
        None, 3, 3, "fields.first-name", ["not a valid field key", "try 'first_name'"],
    ),
    "field key too long": (
        f"""
        entity: contact
        fields:
          {"x" * 41}: {{type: string}}
        """,
        None, 3, 3, "fields." + "x" * 41, ["too long for a field key", "41 characters", "40"],
    ),
    "entity key with a space": (
        """
        entity: Sales Order
        fields: {name: {type: string}}
        """,
        None, 1, 9, "entity", ["'Sales Order' is not a valid entity key", "try 'sales_order'"],
    ),
    "label with unknown language": (
        """
        entity: customer
        label: {en: Customer, fr: Client}
        fields: {name: {type: string}}
        """,
        None, 2, 23, "label.fr", ["unknown key 'fr'", "allowed here: en, zh"],
    ),
    "label of the wrong type": (
        """
        entity: customer
        label: [Customer, 客户]
        fields: {name: {type: string}}
        """,
        None, 2, 8, "label", ["expected a label", "{en: ..., zh: ...}", "got a list"],
    ),
    "label without english": (
        """
        entity: customer
        label: {zh: 客户}
        fields: {name: {type: string}}
        """,
        None, 2, 1, "label", ["'en' is missing", "English"],
    ),
    "empty label": (
        """
        entity: customer
        fields:
          name: {type: string, label: ""}
        """,
        None, 3, 31, "fields.name.label", ["must not be empty"],
    ),
    "required not a boolean": (
        """
        entity: customer
        fields:
          name:
            type: string
            required: yes-please
        """,
        None, 5, 15, "fields.name.required", ["expected true or false", "got 'yes-please'"],
    ),
    "required: yes (Norway)": (
        """
        entity: customer
        fields:
          name: {type: string, required: yes}
        """,
        None, 3, 34, "fields.name.required", ["expected true or false", "'yes' is only text"],
    ),
    "max_length zero": (
        """
        entity: customer
        fields:
          name: {type: string, max_length: 0}
        """,
        None, 3, 36, "fields.name.max_length", ["must be at least 1", "got 0"],
    ),
    "max_length not a number": (
        """
        entity: customer
        fields:
          name: {type: string, max_length: abc}
        """,
        None, 3, 36, "fields.name.max_length", ["expected a whole number, got 'abc'"],
    ),
    "precision too large": (
        """
        entity: opportunity
        fields:
          amount:
            type: decimal
            precision: 99
        """,
        None, 5, 16, "fields.amount.precision", ["must be at most 38", "got 99"],
    ),
    "on_delete bad value": (
        """
        entity: contact
        fields:
          customer: {type: reference, to: customer, on_delete: delete}
        """,
        None, 3, 56, "fields.customer.on_delete",
        ["expected one of: restrict, set_null, cascade", "got 'delete'"],
    ),
    "choices empty": (
        """
        entity: customer
        fields:
          kind:
            type: choice
            choices: {}
        """,
        None, 5, 5, "fields.kind.choices", ["no choices given", "at least one"],
    ),
    "choice key with a space": (
        """
        entity: customer
        fields:
          kind:
            type: choice
            choices:
              A1: {en: Key account}
              new one: New
        """,
        None, 7, 7, "fields.kind.choices['new one']",
        ["'new one' is not a valid choice key", "letters, digits, _ and -"],
    ),
    "sequence pattern without counter": (
        """
        entity: order
        fields:
          number: {type: sequence, sequence_pattern: "SO-{YYYY}"}
        """,
        None, 3, 46, "fields.number.sequence_pattern", ["not a valid sequence pattern", "{#####}"],
    ),
    "nested lines field type misspelled": (
        """
        entity: order
        fields:
          lines:
            type: lines
            fields:
              qty: {type: integr}
        """,
        None, 6, 19, "fields.lines.fields.qty.type", ["got 'integr'", "did you mean 'integer'"],
    ),
    "field written as a bare type": (
        """
        entity: customer
        fields:
          name: string
        """,
        None, 3, 9, "fields.name",
        ["expected a field definition", "got 'string'", "write {type: string}"],
    ),
    "fields is a list": (
        """
        entity: customer
        fields:
          - name
          - phone
        """,
        None, 3, 3, "fields",
        ["expected a mapping of field names to field definitions, got a list"],
    ),
    "fields empty": (
        """
        entity: customer
        fields: {}
        """,
        None, 2, 1, "fields", ["no fields given"],
    ),
    "index fields empty": (
        """
        entity: customer
        fields: {name: {type: string}}
        indexes:
          - fields: []
        """,
        None, 4, 13, "indexes[0].fields", ["the list is empty", "at least one"],
    ),
    "index without fields": (
        """
        entity: customer
        fields: {name: {type: string}}
        indexes:
          - unique: true
        """,
        None, 4, 5, "indexes[0]", ["'fields' is missing", "an index needs"],
    ),
    "extend: unknown key": (
        """
        extend: customer
        archivable: false
        """,
        None, 2, 1, "archivable", ["unknown key 'archivable'", "allowed here: extend, label"],
    ),
    "extend: remove_choices empty": (
        """
        extend: customer
        remove_choices:
          kind: []
        """,
        None, 3, 9, "remove_choices.kind", ["the list is empty"],
    ),
    "pack version not semver": (
        """
        name: crm_extra
        version: "1.0"
        label: Extra
        """,
        "pack", 2, 10, "version", ["'1.0' is not a valid version", "such as 1.0.0"],
    ),
    "pack version read as a number": (
        """
        name: crm_extra
        version: 1.5
        label: Extra
        """,
        "pack", 2, 10, "version", ["expected text, got 1.5", "quotes"],
    ),
    "pack without label": (
        """
        name: crm_extra
        version: 1.0.0
        """,
        "pack", 1, 1, "", ["'label' is missing", "every pack needs a label"],
    ),
    "pack depends not a list": (
        """
        name: crm_extra
        version: 1.0.0
        label: Extra
        depends: core
        """,
        "pack", 4, 10, "depends", ["expected a list of pack names, got 'core'", "[core]"],
    ),
    "pack depends twice the same": (
        """
        name: crm_extra
        version: 1.0.0
        label: Extra
        depends: [core, core]
        """,
        "pack", 4, 17, "depends[1]", ["'core' is listed twice"],
    ),
    "pack unknown key": (
        """
        name: crm_extra
        version: 1.0.0
        label: Extra
        licence: MIT
        """,
        "pack", 4, 1, "licence", ["unknown key 'licence'", "did you mean 'license'"],
    ),
    "site locale fr": (
        """
        name: Acme
        packs: [core]
        locale: fr
        """,
        "site", 3, 9, "locale", ["expected one of: en, zh", "got 'fr'"],
    ),
    "site packs empty": (
        """
        name: Acme
        packs: []
        """,
        "site", 2, 8, "packs", ["the list is empty"],
    ),
    "site unknown key": (
        """
        name: Acme
        packs: [core]
        time_zone: Asia/Shanghai
        """,
        "site", 3, 1, "time_zone", ["unknown key 'time_zone'", "did you mean 'timezone'"],
    ),
    "site currency lower case": (
        """
        name: Acme
        packs: [core]
        currency: cny
        """,
        "site", 3, 11, "currency", ["'cny' is not a valid currency code", "capitals"],
    ),
    "site not a mapping": (
        """
        just some text
        """,
        "site", 1, 1, "", ["expected a mapping of site settings", "got 'just some text'"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_document_is_reported_where_it_is_wrong(name: str) -> None:
    source, kind, line, column, path, words = CASES[name]
    problems = check(source, kind)
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    assert (problem.file, problem.line, problem.column, problem.path) == (
        "def.yaml", line, column, path), str(problem)
    for word in words:
        assert word in problem.message, f"{word!r} not in {problem.message!r}"
    assert problem.severity == "error"


def test_there_are_many_distinct_cases() -> None:
    assert len(CASES) >= 25


# -- all problems at once ----------------------------------------------------------


def test_every_problem_of_a_file_is_reported_together() -> None:
    problems = check(
        """
        entity: customer
        lable: Customer
        fields:
          name: {type: strng, requird: true}
          Phone: {type: phone, max_length: 0}
          kind:
            label: Kind
        indexes:
          - fields: []
        """
    )
    found = {(p.line, p.path) for p in problems}
    assert found == {
        (2, "lable"),
        (4, "fields.name.type"),
        (4, "fields.name.requird"),
        (5, "fields.Phone"),
        (5, "fields.Phone.max_length"),
        (6, "fields.kind"),
        (9, "indexes[0].fields"),
    }
    assert problems == sorted(problems, key=lambda p: (p.line, p.column))


def test_each_unknown_key_is_its_own_problem() -> None:
    problems = check(
        """
        entity: customer
        fields:
          name: {type: string, lenght: 20, requierd: true, colour: red}
        """
    )
    assert [(p.column, p.path) for p in problems] == [
        (24, "fields.name.lenght"), (36, "fields.name.requierd"), (52, "fields.name.colour")]
    assert "did you mean 'required'" in problems[1].message
    assert "did you mean" not in problems[2].message


def test_duplicate_keys_are_all_reported() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_yaml_text(text(
            """
            entity: customer
            fields:
              name: {type: string, type: text}
            entity: contact
            """), "dup.yaml")
    assert [(p.line, p.path) for p in caught.value.problems] == [
        (3, "fields.name.type"), (4, "entity")]
    assert "2 problem(s)" in caught.value.message


def test_definition_error_lists_file_line_column_and_path() -> None:
    problem = check(
        """
        entity: customer
        fields:
          name: {type: strng}
        """
    )[0]
    assert str(problem).startswith("def.yaml:3:16: [fields.name.type] error: expected one of")


# -- valid documents ---------------------------------------------------------------


def test_a_complete_entity_has_no_problem() -> None:
    assert check(
        """
        entity: opportunity
        label: {en: Opportunity, zh: 销售机会}
        plural: Opportunities
        description: {en: A chance to sell}
        title_field: name
        icon: briefcase
        archivable: true
        audit: false
        fields:
          name: {type: string, required: true, max_length: 200, label: {en: Name, zh: 名称}}
          stage:
            type: choice
            default: initial
            choices: {initial: Initial, A1: {en: Key account, zh: 大客户}, 2024-Q1: Q1}
            tracked: true
          amount: {type: decimal, precision: 14, scale: 2, min: 0, max: 1.5e9}
          customer: {type: reference, to: customer, on_delete: restrict, renamed_from: client}
          tags: {type: many_to_many, to: tag}
          number: {type: sequence, sequence_pattern: "OPP-{YYYY}-{#####}"}
          extra: {type: json, default: {a: [1, 2]}, hidden: true}
          lines:
            type: lines
            fields:
              qty: {type: decimal, default: 1}
              total: {type: computed, returns: decimal, expression: "qty * 2", stored: true}
          lost_reason: {type: text, required_if: "stage == 'lost'", visible_if: "true"}
        indexes:
          - fields: [stage, customer]
            unique: false
            name: by_stage
        """
    ) == []


def test_an_extension_may_change_fields_without_their_type() -> None:
    assert check(
        """
        extend: customer
        label: Client
        fields:
          region: {max_length: 50, required: true}
          lines: {fields: {discount: {max: 100}}}
          wechat: {type: string}
        remove_choices:
          kind: [dealer, A1]
        indexes:
          - fields: [region]
        """
    ) == []


def test_a_site_and_a_pack_with_every_option_have_no_problem() -> None:
    assert check(
        """
        name: Acme Sales
        database_url: sqlite:///crm.db
        packs: [core, project_sales]
        locale: zh
        currency: USD
        timezone: Europe/Paris
        pack_paths: [packs, ../shared]
        secret_key: s3cret
        """, "site") == []
    assert check(
        """
        name: project_sales
        version: 0.10.2
        label: {en: Project sales}
        description: Long sales cycles
        depends: [core]
        author: VisionCRM
        license: Apache-2.0
        """, "pack") == []


def test_the_builtin_packs_have_no_problem() -> None:
    for manifest in sorted(PACKS.glob("*/pack.yaml")):
        assert schema_problems(load_yaml(manifest), "pack") == []
        for path in sorted((manifest.parent / "entities").glob("*.yaml")):
            doc = load_yaml(path)
            assert document_kind(doc) in {"entity", "extend"}
            assert schema_problems(doc, document_kind(doc)) == [], path


# -- positions ------------------------------------------------------------------------


def test_positions_of_keys_and_values() -> None:
    doc = load_yaml_text(text(
        """
        entity: customer
        fields:
          name:
            type: string
          tags: [a, b]
        indexes:
          - fields: [name]
        """), "pos.yaml")
    assert doc.locate(()) == (1, 1)
    assert doc.locate(("entity",)) == (1, 9)
    assert doc.locate_key(("entity",)) == (1, 1)
    assert doc.locate(("fields", "name")) == (4, 5)
    assert doc.locate_key(("fields", "name")) == (3, 3)
    assert doc.locate(("fields", "name", "type")) == (4, 11)
    assert doc.locate(("fields", "tags", 1)) == (5, 13)
    assert doc.locate(("indexes", 0, "fields")) == (7, 13)
    assert doc.locate_key(("indexes", 0)) == (7, 5)  # list items have no key: the value
    # unknown paths fall back to the nearest ancestor that exists
    assert doc.locate(("fields", "name", "nope", 3)) == (4, 5)
    assert doc.locate_key(("fields", "missing")) == (3, 3)


def test_problem_renders_the_path_and_picks_key_or_value() -> None:
    doc = load_yaml_text("entity: customer\nindexes:\n  - fields: [a]\n", "p.yaml")
    on_value = doc.problem(("indexes", 0, "fields"), "bad")
    on_key = doc.problem(("indexes", 0, "fields"), "bad", key=True, severity="warning")
    assert (on_value.line, on_value.column, on_value.path) == (3, 13, "indexes[0].fields")
    assert (on_key.line, on_key.column, on_key.severity) == (3, 5, "warning")
    assert render_path(("fields", "lines", "fields", "qty", "type")) == (
        "fields.lines.fields.qty.type")
    assert render_path((0, "a b", "x")) == "[0]['a b'].x"
    assert render_path(()) == ""


def test_source_document_is_read_only() -> None:
    doc = load_yaml_text("a: 1\n", "r.yaml")
    assert isinstance(doc, SourceDocument)
    with pytest.raises(TypeError):
        doc.positions[("b",)] = (1, 1)  # type: ignore[index]
    with pytest.raises(AttributeError):
        doc.file = "other"  # type: ignore[misc]


# -- YAML 1.2 scalars -----------------------------------------------------------------


def test_norway_and_dates_stay_text() -> None:
    doc = load_yaml_text(text(
        """
        country: NO
        answer: no
        switch: on
        yes: Yes
        t1: true
        t2: True
        t3: TRUE
        f1: false
        f2: FALSE
        day: 2024-01-01
        moment: 2024-01-01T10:00:00
        octal_like: 0755
        hex: 0x1F
        octal: 0o17
        int: -42
        float: 1.5e3
        inf: -.inf
        version: 1.0.0
        underscore: 1_000
        n1: ~
        n2: null
        n3:
        quoted_true: "true"
        quoted_num: '12'
        """), "scalars.yaml")
    data: dict[str, Any] = doc.data
    assert data["country"] == "NO" and data["answer"] == "no" and data["switch"] == "on"
    assert data["yes"] == "Yes"
    assert [data[k] for k in ("t1", "t2", "t3", "f1", "f2")] == [True, True, True, False, False]
    assert data["day"] == "2024-01-01" and data["moment"] == "2024-01-01T10:00:00"
    assert (data["octal_like"], data["hex"], data["octal"], data["int"]) == (755, 31, 15, -42)
    assert data["float"] == 1500.0 and data["inf"] == -math.inf
    assert data["version"] == "1.0.0" and data["underscore"] == "1_000"
    assert data["n1"] is None and data["n2"] is None and data["n3"] is None
    assert data["quoted_true"] == "true" and data["quoted_num"] == "12"


def test_non_string_keys_become_their_written_text() -> None:
    doc = load_yaml_text("1: one\n01: zero-one\ntrue: yes\n2.5: x\nnull: n\n", "k.yaml")
    assert doc.data == {"1": "one", "01": "zero-one", "true": "yes", "2.5": "x", "null": "n"}
    assert doc.locate_key(("01",)) == (2, 1)


def test_anchors_aliases_and_merge_keys() -> None:
    doc = load_yaml_text(text(
        """
        entity: order
        fields:
          name: &short {type: string, max_length: 50}
          code: *short
          note:
            <<: *short
            max_length: 500
        """), "a.yaml")
    fields = doc.data["fields"]
    assert fields["code"] == {"type": "string", "max_length": 50}
    assert fields["note"] == {"type": "string", "max_length": 500}
    assert doc.locate(("fields", "note", "max_length")) == (7, 17)
    assert doc.locate(("fields", "note", "type")) == (3, 23)  # where the merged value is written
    assert schema_problems(doc, "entity") == []


def test_circular_alias_is_a_problem_not_a_crash() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_yaml_text("a: &x [1, *x]\n", "c.yaml")
    assert "circular" in caught.value.problems[0].message


def test_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    with pytest.raises(DefinitionError) as caught:
        load_yaml_text("\n".join(lines) + "\n", "bomb.yaml")
    assert "more than" in caught.value.problems[0].message


def test_control_character_is_a_problem() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_yaml_text("entity: a\nlabel: \x07bell\n", "ctl.yaml")
    problem = caught.value.problems[0]
    assert (problem.line, problem.column) == (2, 8)
    assert "control character" in problem.message


# -- files on disk ------------------------------------------------------------------


def test_load_yaml_reads_a_file_with_its_display_name(tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes("\ufeffentity: customer\nlabel: 客户\n".encode())
    doc = load_yaml(path, "packs/core/entities/customer.yaml")
    assert doc.file == "packs/core/entities/customer.yaml"
    assert doc.data == {"entity": "customer", "label": "客户"}
    assert load_yaml(path).file == str(path)


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes("entity: customer\nlabel: 客户\n".encode("gbk"))
    with pytest.raises(DefinitionError) as caught:
        load_yaml(path, "gbk.yaml")
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.column) == ("gbk.yaml", 2, 8)
    assert "UTF-8" in problem.message


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_yaml(tmp_path / "nope.yaml", "nope.yaml")
    problem = caught.value.problems[0]
    assert problem.file == "nope.yaml" and problem.line is None
    assert "cannot read the file" in problem.message


# -- the schemas themselves ----------------------------------------------------------


def _walk(node: Any, where: str = "") -> Any:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}/{index}")


def test_all_schemas_are_valid_2020_12_schemas() -> None:
    schemas = all_schemas()
    assert set(schemas) == {f"{k}.schema.json" for k in SCHEMA_KINDS} | {"common.schema.json"}
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://visioncrm.dev/schemas/{name}"
        assert json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8")) == schema


def test_every_property_has_a_description() -> None:
    missing = [
        f"{name}#{where}/properties/{prop}"
        for name, schema in all_schemas().items()
        for where, node in _walk(schema)
        if isinstance(node.get("properties"), dict) and not where.endswith("/properties")
        for prop, sub in node["properties"].items()
        if not sub.get("description")
    ]
    assert missing == []


def test_unknown_keys_are_refused_everywhere() -> None:
    loose = [
        f"{name}#{where}"
        for name, schema in all_schemas().items()
        for where, node in _walk(schema)
        if "properties" in node and not where.endswith("/properties")
        and node.get("additionalProperties") is not False and "$ref" not in node
    ]
    assert loose == []


def test_load_schema_gives_a_copy() -> None:
    schema = load_schema("entity")
    schema["properties"].clear()
    assert "fields" in load_schema("entity")["properties"]
    with pytest.raises(ValueError):
        load_schema("workflow_nope")
    with pytest.raises(ValueError):
        schema_problems(load_yaml_text("a: 1\n", "x.yaml"), "nope")


def test_document_kind_follows_the_discriminator() -> None:
    assert set(DISCRIMINATORS.values()) <= set(SCHEMA_KINDS)
    assert document_kind(load_yaml_text("entity: a\n", "x.yaml")) == "entity"
    assert document_kind(load_yaml_text("# c\nextend: a\n", "x.yaml")) == "extend"
    assert document_kind(load_yaml_text("fields: {}\n", "x.yaml")) is None
    assert document_kind(load_yaml_text("- entity\n", "x.yaml")) is None


def test_fast_and_detailed_validators_agree_on_every_case():
    """The fast validator decides "valid"; it must never pass a file jsonschema rejects."""
    from engine.metadata.schema_check import _fast_validator, _validator

    checked = 0
    for name, (source, kind, *_rest) in CASES.items():
        try:
            doc = load_yaml_text(text(source), "def.yaml")
        except DefinitionError:
            continue
        for k in [kind] if kind else ["entity", "extend", "pack", "site"]:
            fast = _fast_validator(k).is_valid(doc.data)
            detailed = not any(True for _ in _validator(k).iter_errors(doc.data))
            assert fast == detailed, (name, k)
            checked += 1
    assert checked > 20
