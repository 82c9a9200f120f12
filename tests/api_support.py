"""Helpers for the API tests: a migrated core site, an app and token-carrying clients."""

from __future__ import annotations

import datetime as dt

from engine.context import FixedClock
from engine.web import create_app
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"


def core_site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    site = open_migrated(root, clock=FixedClock(NOW))
    site.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    site.users.create("rep", password=PASSWORD, roles=["sales"])
    site.users.create("other", password=PASSWORD, roles=["sales"])
    return site


class Api:
    """A test client that sends a Bearer token and JSON."""

    def __init__(self, app, token: str | None) -> None:
        self.client = app.test_client()
        self.token = token

    def call(self, method: str, path: str, json=None, headers=None, **kwargs):
        sent = dict(headers or {})
        if self.token:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        return self.client.open("/api/v1" + path, method=method, json=json, headers=sent,
                                **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.call("POST", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.call("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def api_for(site, login: str) -> Api:
    token, _ = site.users.tokens.create(login, "tests")
    return Api(create_app(site, testing=True), token)
