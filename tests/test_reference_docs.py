"""Meta-tests: the documentation and the two descriptions of field options agree."""

from __future__ import annotations

from pathlib import Path

from engine.metadata.field_types import COMMON_OPTIONS, FIELD_TYPES
from engine.metadata.reference import render_reference
from engine.metadata.schema_check import all_schemas

DOCS = Path(__file__).parent.parent / "docs"


def test_reference_is_current():
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/reference.md is out of date: run python -m engine.metadata.reference > docs/reference.md"
    )


def test_every_schema_key_is_in_the_reference():
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    for name, schema in all_schemas().items():
        if name == "common.schema.json":
            continue
        for key in schema.get("properties", {}):
            assert f"`{key}`" in text, f"{name}: {key} is not documented"


def test_field_type_options_match_the_schema():
    schema_options = set(all_schemas()["common.schema.json"]["$defs"]["fieldOptions"]["properties"])
    python_options = set(COMMON_OPTIONS).union(*(t.options for t in FIELD_TYPES.values()))
    assert schema_options == python_options
    schema_types = all_schemas()["common.schema.json"]["$defs"]["fieldType"]["enum"]
    assert schema_types == list(FIELD_TYPES)
