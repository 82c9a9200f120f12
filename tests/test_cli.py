"""The `crm` command end to end: the README's tutorial, as a test."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from engine.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args, ok=True):
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def site_dir(tmp_path, runner, db_url):
    folder = tmp_path / "acme"
    invoke(runner, "init", folder, "--pack", "core", "--database-url", db_url,
           "--admin-password", "correct-horse")
    return folder


def test_init_creates_a_working_site(tmp_path, runner, sqlite_url):
    result = invoke(runner, "init", tmp_path / "s", "--pack", "core")
    assert "Password:" in result.output and "shown once" in result.output
    assert (tmp_path / "s" / "crm.yaml").is_file()
    assert (tmp_path / "s" / "custom" / "README.md").is_file()
    result = invoke(runner, "--site", tmp_path / "s", "check")
    assert result.output.startswith("OK: 1 pack(s), 10 entities")


def test_tutorial_overlay_check_migrate_create_list(site_dir, runner):
    (site_dir / "custom" / "customer.yaml").write_text(textwrap.dedent("""\
        extend: customer
        fields:
          wechat_group:
            type: string
            max_lenght: 100
    """), encoding="utf-8")
    result = invoke(runner, "--site", site_dir, "check", ok=False)
    assert result.exit_code == 2
    assert "custom/customer.yaml:5:" in result.output
    assert "did you mean 'max_length'" in result.output

    (site_dir / "custom" / "customer.yaml").write_text(textwrap.dedent("""\
        extend: customer
        fields:
          wechat_group:
            type: string
            max_length: 100
            label: {en: WeChat group, zh: 微信群}
    """), encoding="utf-8")
    invoke(runner, "--site", site_dir, "check")
    plan = invoke(runner, "--site", site_dir, "migrate", "--plan")
    assert "wechat_group" in plan.output
    invoke(runner, "--site", site_dir, "migrate")
    assert "up to date" in invoke(runner, "--site", site_dir, "migrate").output

    created = invoke(runner, "--site", site_dir, "record", "create", "customer",
                     "name=华信科技有限公司", "kind=client", "wechat_group=华信项目群", "--json")
    customer = json.loads(created.output)
    assert customer["code"] == "C-00001"
    assert customer["wechat_group"] == "华信项目群"
    invoke(runner, "--site", site_dir, "record", "create", "opportunity", "name=机房改造",
           f"customer={customer['id']}", "amount=800000", "probability=80",
           'lines:=[{"item": "机柜", "quantity": 10, "unit_price": 45000}]')
    listed = json.loads(invoke(runner, "--site", site_dir, "record", "list", "opportunity",
                               "--filter", "amount__gt=10000", "--json").output)
    assert listed["total"] == 1
    assert listed["rows"][0]["weighted_amount"] == "640000.00"
    text = invoke(runner, "--site", site_dir, "record", "list", "customer").output
    assert "华信科技有限公司" in text and "(1 of 1)" in text


def test_record_errors_are_field_messages_and_exit_1(site_dir, runner):
    result = invoke(runner, "--site", site_dir, "record", "create", "customer", "email=nope",
                    ok=False)
    assert result.exit_code == 1
    assert "name: This field is required." in result.output
    assert "email: Not a valid e-mail address." in result.output
    result = invoke(runner, "--site", site_dir, "record", "get", "customer", "99", ok=False)
    assert result.exit_code == 1 and "not found" in result.output


def test_update_with_stale_version_is_refused(site_dir, runner):
    invoke(runner, "--site", site_dir, "record", "create", "customer", "name=A")
    invoke(runner, "--site", site_dir, "record", "update", "customer", "1", "name=B",
           "--version", "1")
    result = invoke(runner, "--site", site_dir, "record", "update", "customer", "1", "name=C",
                    "--version", "1", ok=False)
    assert result.exit_code == 1 and "changed by someone else" in result.output
    history = invoke(runner, "--site", site_dir, "record", "history", "customer", "1").output
    assert '"A" → "B"' in history


def test_schema_command_writes_every_schema(tmp_path, runner):
    invoke(runner, "schema", "--out", tmp_path / "schemas")
    names = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert {"entity.schema.json", "extend.schema.json", "pack.schema.json",
            "site.schema.json"} <= set(names)
    for name in names:
        assert json.loads((tmp_path / "schemas" / name).read_text())["$schema"].endswith("2020-12/schema")


def test_demo_builds_a_seeded_site(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "demo", "--no-serve")
    assert "Log in as admin" in result.output
    listed = json.loads(invoke(runner, "--site", tmp_path / "crm-demo", "record", "list",
                               "customer", "--json").output)
    assert listed["total"] == 8
    again = invoke(runner, "demo", "--no-serve")  # re-running reopens the site, it does not duplicate data
    assert "(8 customers)" in again.output


def test_no_site_is_a_clear_error(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_SITE", raising=False)
    result = invoke(runner, "check", ok=False)
    assert result.exit_code == 1
    assert "crm init DIR" in result.output


def test_records_wait_for_migrate_after_a_definition_change(site_dir, runner):
    (site_dir / "custom" / "customer.yaml").write_text(
        "extend: customer\nfields:\n  level: {type: integer}\n", encoding="utf-8"
    )
    result = invoke(runner, "--site", site_dir, "record", "list", "customer", ok=False)
    assert result.exit_code == 1
    assert "run 'crm migrate'" in result.output
    invoke(runner, "--site", site_dir, "migrate")
    invoke(runner, "--site", site_dir, "record", "create", "customer", "name=A", "level=3")
