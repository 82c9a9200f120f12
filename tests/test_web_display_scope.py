"""Titles of referenced records the reader may not see: shown by number, asked for once."""

from __future__ import annotations

from engine.context import Actor
from engine.web.presentation.display import Presenter
from tests.support import open_migrated, write_site


def test_out_of_scope_reference_is_a_number_and_not_fetched_again(tmp_path, db_url):
    site = open_migrated(write_site(tmp_path / "site", db_url, ["core"]))
    try:
        site.users.create("ann", password=None, roles=["sales"])
        site.users.create("bob", password=None, roles=["sales"])
        system = Actor.system()
        theirs = site.records.create(system, "customer", {
            "name": "Acme", "owner": site.users.get("ann")["id"]})
        mine = site.records.create(system, "customer", {
            "name": "Jinding", "owner": site.users.get("bob")["id"]})
        shown = Presenter(site, site.users.actor("bob"), "en")
        asked = []
        listing = site.records.list

        def counting(*args, **kwargs):
            asked.append(kwargs.get("filters"))
            return listing(*args, **kwargs)

        site.records.list = counting  # type: ignore[method-assign]
        assert shown.reference_title("customer", mine["id"]) == "Jinding"
        assert shown.reference_title("customer", theirs["id"]) == f"#{theirs['id']}"
        assert shown.reference_title("customer", theirs["id"]) == f"#{theirs['id']}"
        assert len(asked) == 2  # once each, never again for the one out of scope
    finally:
        site.close()
