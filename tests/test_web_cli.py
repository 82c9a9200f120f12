"""``crm serve`` and ``crm demo`` start the web UI (the server itself is replaced here)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask import Flask

from engine.cli import main


@pytest.fixture
def served(monkeypatch):
    calls = []

    def fake_run_simple(host, port, app, **options):
        calls.append((host, port, app))

    monkeypatch.setattr("werkzeug.serving.run_simple", fake_run_simple)
    return calls


def test_demo_ends_by_serving_the_web_ui(tmp_path, monkeypatch, served):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--port", "8123"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/" in result.output and "admin / visioncrm-demo" in result.output
    (host, port, app), = served
    assert (host, port) == ("127.0.0.1", 8123) and isinstance(app, Flask)
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 200


def test_serve_runs_the_site_of_the_folder(tmp_path, served):
    runner = CliRunner()
    site = tmp_path / "acme"
    runner.invoke(main, ["init", str(site), "--pack", "core", "--admin-password",
                         "correct-horse"], catch_exceptions=False)
    result = runner.invoke(main, ["--site", str(site), "serve", "--host", "0.0.0.0"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert served[0][:2] == ("0.0.0.0", 8000)
