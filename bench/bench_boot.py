"""Boot: load + check + compile the definitions, as the number of entities grows.

Baseline: parsing the same files with PyYAML's fastest safe loader (libyaml's
``CSafeLoader`` when available) — the least any YAML-driven engine must
spend — so the ratio is the price of positions, schema checks, semantic
checks and table compilation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from bench.common import best_of, print_table, write_result
from engine.metadata.loader import load_registry
from engine.metadata.packs import find_pack_dirs
from engine.storage.tables import build_schema

ENTITY_TEMPLATE = """\
entity: e{n}
label: {{en: Entity {n}, zh: 实体{n}}}
fields:
  name: {{type: string, required: true, max_length: 120, searchable: true}}
  code: {{type: sequence, sequence_pattern: "E{n}-{{#####}}"}}
  amount: {{type: decimal, precision: 14, scale: 2, min: 0}}
  probability: {{type: integer, min: 0, max: 100, default: 10}}
  weighted: {{type: computed, returns: decimal, expression: "amount * probability / 100"}}
  stage: {{type: choice, default: a, choices: {{a: {{en: A, zh: 甲}}, b: {{en: B, zh: 乙}}, c: C}}}}
  due: {{type: date}}
  note: {{type: text, required_if: "stage == 'c'"}}
  parent: {{type: reference, to: e{parent}, on_delete: set_null}}
  done: {{type: boolean, default: false}}
"""


def generated_pack(base: Path, count: int) -> Path:
    root = base / f"gen{count}"
    (root / "entities").mkdir(parents=True)
    (root / "pack.yaml").write_text(
        f"name: gen{count}\nversion: 1.0.0\nlabel: {{en: Generated, zh: 生成}}\n", encoding="utf-8"
    )
    for n in range(count):
        (root / "entities" / f"e{n}.yaml").write_text(
            ENTITY_TEMPLATE.format(n=n, parent=max(0, n - 1)), encoding="utf-8"
        )
    return root


def boot(packs: list[str], search: list[Path]) -> None:
    build_schema(load_registry(packs, search_paths=search))


FASTEST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_only(files: list[Path]) -> None:
    for path in files:
        yaml.load(path.read_text(encoding="utf-8"), Loader=FASTEST_SAFE_LOADER)  # noqa: S506


def run() -> dict:
    rows = []
    figures = {}
    cases = []
    # each built-in pack with the packs it depends on, as a site enables it (the sales-model
    # packs are alternatives: they are never loaded together)
    for name in sorted(find_pack_dirs()):
        loaded = load_registry([name]).packs.values()
        files = sorted(f for pack in loaded for f in Path(pack.path).rglob("*.yaml"))
        cases.append((f"pack {name}", [name], [], files))
    with tempfile.TemporaryDirectory() as tmp:
        for count in (10, 100, 500):
            root = generated_pack(Path(tmp), count)
            cases.append((f"{count} generated entities", [root.name], [Path(tmp)],
                          sorted(root.rglob("*.yaml"))))
        for label, packs, search, case_files in cases:
            repeat = 3 if len(case_files) > 100 else 5
            engine_s = best_of(lambda p=packs, s=search: boot(p, s), repeat)
            base_s = best_of(lambda f=case_files: parse_only(f), repeat)
            figures[label] = {"boot_ms": engine_s * 1000, "yaml_parse_ms": base_s * 1000,
                              "ratio": engine_s / base_s, "files": len(case_files)}
            rows.append((label, str(len(case_files)), f"{engine_s * 1000:.1f}",
                         f"{base_s * 1000:.1f}", f"{engine_s / base_s:.2f}×"))
    print_table("Boot: load + check + compile", rows,
                ("definitions", "files", "boot ms", "YAML parse ms", "ratio"))
    write_result("boot", figures)
    return figures


if __name__ == "__main__":
    run()
