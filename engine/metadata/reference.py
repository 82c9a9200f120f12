"""The definition-file reference, generated from the JSON Schemas and the field types.

Generated rather than written by hand so it can never drift from what the
loader accepts; a test compares ``docs/reference.md`` with this output.
Run ``python -m engine.metadata.reference > docs/reference.md`` after
changing a schema.
"""

from __future__ import annotations

import json
from typing import Any

from engine.metadata.field_types import COMMON_OPTIONS, FIELD_TYPES
from engine.metadata.schema_check import SCHEMA_KINDS, all_schemas

TITLE = "# Definition file reference"
INTRO = """\
Every key a definition file may hold, generated from the JSON Schemas in
`engine/metadata/schemas/` (the same schemas `crm check` validates with and
`crm schema --out DIR` writes for editors). Unknown keys are errors.
"""


def _resolve(node: dict[str, Any], schemas: dict[str, dict]) -> dict[str, Any]:
    """Follow ``$ref`` (within or across schema files), keeping local descriptions."""
    seen = 0
    while "$ref" in node and seen < 10:
        ref = node["$ref"]
        file_part, _, pointer = ref.partition("#")
        target = schemas["common.schema.json"] if file_part.endswith("common.schema.json") or (
            not file_part and pointer.startswith("/$defs/")
        ) else schemas.get(file_part, {})
        for part in pointer.strip("/").split("/"):
            if part:
                target = target[part]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        node = merged
        seen += 1
    return node


def _type_words(node: dict[str, Any], schemas: dict[str, dict]) -> str:
    node = _resolve(node, schemas)
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        options = node.get("oneOf") or node.get("anyOf")
        return " or ".join(_type_words(o, schemas) for o in options)
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type_words(node.get('items', {}), schemas)}"
    if kind == "object" and "additionalProperties" in node and isinstance(
        node["additionalProperties"], dict
    ):
        return f"mapping of name → {node.get('title') or _type_words(node['additionalProperties'], schemas)}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return node.get("title") if kind == "object" and node.get("title") else (kind or "any value")


def _properties_table(node: dict[str, Any], schemas: dict[str, dict], required: set[str]) -> list[str]:
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, prop in node.get("properties", {}).items():
        resolved = _resolve(prop, schemas)
        default = json.dumps(resolved["default"], ensure_ascii=False) if "default" in resolved else ""
        description = (prop.get("description") or resolved.get("description") or "").replace("|", "\\|")
        examples = resolved.get("examples")
        if examples:
            shown = ", ".join(f"`{json.dumps(e, ensure_ascii=False)}`" for e in examples[:2])
            description += f" Example: {shown}."
        name = f"`{key}`" + (" (required)" if key in required else "")
        lines.append(f"| {name} | {_type_words(prop, schemas)} | {default} | {description} |")
    return lines


def _section(title: str, node: dict[str, Any], schemas: dict[str, dict]) -> list[str]:
    node = _resolve(node, schemas)
    out = [f"## {title}", ""]
    if node.get("description"):
        out += [node["description"], ""]
    out += _properties_table(node, schemas, set(node.get("required", [])))
    return out + [""]


def _field_types() -> list[str]:
    out = ["## Field types", "", "Options every field takes: "
           + ", ".join(f"`{o}`" for o in sorted(COMMON_OPTIONS - {"type"})) + ".", "",
           "| type | what it holds | options of its own |", "| --- | --- | --- |"]
    for name, ftype in FIELD_TYPES.items():
        own = sorted(ftype.options - COMMON_OPTIONS)
        out.append(f"| `{name}` | {ftype.summary} | {', '.join(f'`{o}`' for o in own) or '—'} |")
    return out + [""]


def render_reference() -> str:
    schemas = all_schemas()
    out = [TITLE, "", INTRO]
    titles = {"site": "crm.yaml (a site)", "pack": "pack.yaml (a pack manifest)",
              "entity": "entity: documents", "extend": "extend: documents",
              "import_mapping": "Import mapping files (crm import --mapping FILE)"}
    for kind in SCHEMA_KINDS:
        out += _section(titles.get(kind, f"{kind}: documents"), schemas[f"{kind}.schema.json"], schemas)
    out += _section("Field options", schemas["common.schema.json"]["$defs"]["fieldOptions"], schemas)
    view_defs = schemas["view.schema.json"]["$defs"]
    for name, title in (("list", "view: list"), ("layout", "view: form and detail"),
                        ("section", "view: a section"), ("kanban", "view: kanban")):
        out += _section(title, view_defs[name], schemas)
    out += _section("view: a related list", view_defs["related"]["items"], schemas)
    out += _section("view: a quick-create form", view_defs["quick"]["items"], schemas)
    out += _section("dashboard: a widget",
                    schemas["dashboard.schema.json"]["$defs"]["widget"], schemas)
    out += _section("Entity hooks (hooks: in entity and extend documents)",
                    schemas["common.schema.json"]["$defs"]["entityHooks"], schemas)
    out += _section("Ledgers (ledger: in entity documents)",
                    schemas["common.schema.json"]["$defs"]["ledger"], schemas)
    reminder_defs = schemas["reminder.schema.json"]["$defs"]
    for name, title in (("dateSchedule", "reminder: schedule date"),
                        ("slaSchedule", "reminder: schedule sla"),
                        ("staleSchedule", "reminder: schedule stale")):
        out += _section(title, reminder_defs[name], schemas)
    notifications = schemas["site.schema.json"]["properties"]["notifications"]
    out += _section("crm.yaml notifications:", notifications, schemas)
    for name in ("smtp", "sms", "quiet_hours", "delivery"):
        out += _section(f"crm.yaml notifications: {name}", notifications["properties"][name],
                        schemas)
    site_keys = schemas["site.schema.json"]["properties"]
    out += _section("pack.yaml jobs: a scheduled job",
                    schemas["pack.schema.json"]["properties"]["jobs"]["additionalProperties"],
                    schemas)
    out += _section("crm.yaml jobs: a job change", site_keys["jobs"]["additionalProperties"],
                    schemas)
    out += _section("crm.yaml backups:", site_keys["backups"], schemas)
    out += _field_types()
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
