"""``crm pack new``: the skeleton passes `crm check` and its own test, as generated."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.testing import write_site


def invoke(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_the_skeleton_passes_check_and_its_own_test(tmp_path, db_url):
    out = invoke("pack", "new", "repairs", "--path", tmp_path).output
    root = tmp_path / "repairs"
    for relative in ("pack.yaml", "entities/repairs_request.yaml",
                     "workflows/repairs_request.yaml", "roles.yaml", "views/repairs_request.yaml",
                     "hooks.py", "demo/data.yaml", "tests/test_repairs.py"):
        assert (root / relative).is_file(), relative
        assert relative in out
    assert "OK: pack 'repairs' 0.1.0: 1 entities, 1 workflow(s)." in invoke(
        "pack", "check", root).output
    # A site using it next to the core pack checks too (no name collides with core's).
    site = write_site(tmp_path / "site", db_url, ["core", "repairs"], pack_paths=[tmp_path])
    assert "OK:" in invoke("--site", site, "check").output
    # Its own test, run as its developer would, on this run's database.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout


@pytest.mark.parametrize("name", ["Repairs", "2fast", "my-pack", "x" * 31])
def test_a_name_that_is_not_a_pack_name_is_refused(tmp_path, name):
    out = invoke("pack", "new", name, "--path", tmp_path, ok=False).output
    assert "is not a pack name" in out
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "repairs").mkdir()
    (tmp_path / "repairs" / "notes.txt").write_text("mine")
    out = invoke("pack", "new", "repairs", "--path", tmp_path, ok=False).output
    assert "already exists" in out
    assert [p.name for p in (tmp_path / "repairs").iterdir()] == ["notes.txt"]


def test_pack_check_reports_a_broken_pack_with_its_line(tmp_path):
    invoke("pack", "new", "shop", "--path", tmp_path)
    entity = tmp_path / "shop" / "entities" / "shop_request.yaml"
    entity.write_text(entity.read_text().replace("before_save: tidy_title",
                                                 "before_save: tidy_titel"))
    line = entity.read_text().splitlines().index("  before_save: tidy_titel") + 1
    result = CliRunner().invoke(main, ["pack", "check", str(tmp_path / "shop")])
    assert result.exit_code == 2
    assert (f"packs/shop/entities/shop_request.yaml:{line}:16: [hooks.before_save] error: "
            "packs/shop/hooks.py has no function 'tidy_titel' (did you mean 'tidy_title'?)"
            ) in result.output
