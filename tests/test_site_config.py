"""``crm config export / import``: overlays, settings, users and teams move; secrets never do."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import main
from engine.errors import DefinitionError, ValidationFailed
from engine.site import Site
from engine.site_config import export_config, import_config
from engine.testing import open_pack_site

OVERLAY = """
    extend: customer
    fields:
      wechat_group: {type: string, max_length: 100, label: {en: WeChat group, zh: 微信群}}
"""


@pytest.fixture
def source(tmp_path, db_url):
    kit = open_pack_site(tmp_path / "a", db_url, ["core"],
                         overlays={"customer.yaml": OVERLAY,
                                   "hooks.py": "def noop(context):\n    pass\n"})
    kit.site.users.create("li", password="a-long-secret-1", roles=["sales"], language="zh",
                          email="li@example.cn")
    kit.site.users.teams.create("east", label="East")
    kit.site.users.teams.create("shanghai", parent="east", manager="li")
    kit.site.users.teams.add_member("shanghai", "li")
    yield kit
    kit.close()


@pytest.fixture
def target(tmp_path):
    with open_pack_site(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}", ["core"]) as kit:
        yield kit


def test_export_holds_the_configuration_and_no_secret(source):
    data = export_config(source.site)
    text = yaml.safe_dump(data, allow_unicode=True)
    assert "a-long-secret" not in text and "password" not in text
    assert "database_url" not in text and "sqlite" not in text
    assert data["settings"] == {"packs": ["core"], "locale": "en"}
    assert set(data["files"]) == {"customer.yaml", "hooks.py"}
    li = next(u for u in data["users"] if u["login"] == "li")
    assert li == {"login": "li", "display_name": "li", "email": "li@example.cn",
                  "language": "zh", "active": True, "is_admin": False, "roles": ["sales"]}
    assert {"name": "shanghai", "label": "shanghai", "parent": "east", "manager": "li",
            "members": ["li"]} in data["teams"]


def test_import_brings_overlays_users_and_teams(source, target):
    summary = import_config(target.site, export_config(source.site))
    assert summary.users_created == ["li"] and summary.users_updated == ["admin"]
    root = target.site.config.root
    assert (root / "custom" / "customer.yaml").read_text() == (
        source.site.config.overlay_dir / "customer.yaml").read_text()
    with Site.open(root) as reopened:
        assert "wechat_group" in reopened.registry.entity("customer").fields
        li = reopened.users.get("li")
        assert li["roles"] == ["sales"] and li["password_hash"] is None  # no password travels
        assert reopened.users.teams.get("shanghai")["parent"] == "east"
        assert reopened.users.teams.get("shanghai")["members"] == ["li"]
    assert CliRunner().invoke(main, ["--site", str(root), "check"]).exit_code == 0


def test_a_wrong_import_writes_nothing(source, target):
    root = target.site.config.root
    data = export_config(source.site)
    wrong_role = {**data, "users": [{"login": "wu", "roles": ["salse"]}]}
    with pytest.raises(ValidationFailed) as caught:
        import_config(target.site, wrong_role)
    assert "there is no role 'salse'" in caught.value.errors["users[0].roles"][0]
    broken = {**data, "files": {"customer.yaml": OVERLAY.replace("max_length", "max_lenght")}}
    with pytest.raises(DefinitionError) as problems:
        import_config(target.site, broken)
    assert "custom/customer.yaml" in str(problems.value)
    loop = {**data, "teams": [{"name": "a", "parent": "b"}, {"name": "b", "parent": "a"}]}
    with pytest.raises(ValidationFailed) as caught:
        import_config(target.site, loop)
    assert caught.value.errors["teams[0].parent"] == ["team 'a' would be under itself"]
    secret = {**data, "users": [{"login": "wu", "password_hash": "x"}]}
    with pytest.raises(ValidationFailed) as caught:
        import_config(target.site, secret)
    assert "passwords never travel" in caught.value.errors["users[0]"][0]
    missing_member = {**data, "teams": [{"name": "north", "members": ["nobody"]}]}
    with pytest.raises(ValidationFailed) as caught:
        import_config(target.site, missing_member)
    assert caught.value.errors == {"teams[0].members": ["there is no user 'nobody'"]}
    assert [u["login"] for u in target.site.users.list()] == ["admin"]
    assert target.site.users.teams.list() == []
    assert sorted(p.name for p in (root / "custom").iterdir()) == []


def test_a_changed_file_needs_replace(source, target):
    own = target.site.config.overlay_dir / "customer.yaml"
    own.write_text("extend: customer\nlabel: Client\n")
    with pytest.raises(ValidationFailed, match="exists with other content"):
        import_config(target.site, export_config(source.site))
    assert own.read_text() == "extend: customer\nlabel: Client\n"
    import_config(target.site, export_config(source.site), replace=True)
    assert "wechat_group" in own.read_text()


def test_the_commands(source, target, tmp_path):
    out = tmp_path / "acme-config.yaml"
    runner = CliRunner()
    exported = runner.invoke(main, ["--site", str(source.site.config.root), "config", "export",
                                    "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    imported = runner.invoke(main, ["--site", str(target.site.config.root), "config", "import",
                                    str(out)])
    assert imported.exit_code == 0, imported.output
    assert "users: 1 created" in imported.output
    assert "run 'crm migrate --plan'" in imported.output
