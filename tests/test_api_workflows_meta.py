"""The REST API: stage transitions, exact lookups, hidden fields, metadata and OpenAPI."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from engine.context import Actor, FixedClock
from engine.web import create_app
from tests.api_support import NOW, Api, api_for, core_site
from tests.support import open_migrated, write_pack, write_site
from tests.test_api_records import _problem
from tests.test_permissions import SHOP

SYSTEM = Actor.system()


@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    yield opened
    opened.close()


@pytest.fixture
def shop(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", SHOP)
    root = write_site(tmp_path / "shop", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    for login, role in [("seller", "sales"), ("clerk", "clerk")]:
        opened.users.create(login, password="password-1", roles=[role])
    yield opened
    opened.close()


def test_stage_changes_only_through_transitions(site):
    admin = api_for(site, "admin")
    acme = admin.post("/customer", {"name": "Acme"}).get_json()
    opp = admin.post("/opportunity", {"name": "ERP", "customer": acme["id"]}).get_json()
    stage = opp["stage"]
    bypass = admin.patch(f"/opportunity/{opp['id']}", {"stage": "won", "version": opp["version"]})
    assert bypass.status_code in (403, 409, 422), bypass.get_json()
    assert bypass.mimetype == "application/problem+json"
    assert admin.get(f"/opportunity/{opp['id']}").get_json()["stage"] == stage
    options = admin.get(f"/opportunity/{opp['id']}/transitions").get_json()["items"]
    assert {o["to"] for o in options} >= {"proposal", "lost"}
    # won is not reachable from the first stage: refused with its reasons.
    refused = _problem(admin.post(f"/opportunity/{opp['id']}/transitions", {"to": "won"}), 409,
                       "transition_refused")
    assert refused["reasons"]
    # proposal needs an amount: given on the way, it moves.
    moved = admin.post(f"/opportunity/{opp['id']}/transitions",
                       {"to": "proposal", "values": {"amount": "0"}})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["stage"] == "proposal"
    # The guard "amount > 0" refuses winning, and says why.
    win = [o for o in admin.get(f"/opportunity/{opp['id']}/transitions").get_json()["items"]
           if o["to"] == "won"][0]
    assert win["allowed"] is False and win["reasons"][0]["code"] == "guard"
    guard = _problem(admin.post(f"/opportunity/{opp['id']}/transitions", {"to": "won"}), 409)
    assert guard["reasons"][0]["code"] == "guard" and guard["reasons"][0]["message"]
    _problem(admin.post(f"/opportunity/{opp['id']}/transitions", {"values": []}), 422)


def test_lookup_is_exact_and_hidden_fields_never_appear(shop):
    member = shop.records.create(SYSTEM, "member", {"name": "Wang Fang", "number": "M-001",
                                                    "credit_note": "owes 300"})
    shop.records.create(SYSTEM, "member", {"name": "Wang Fang Jr", "number": "M-002"})
    clerk = api_for(shop, "clerk")
    _problem(clerk.get(f"/member/{member['id']}"), 404)
    assert clerk.get("/member").get_json()["total"] == 0
    found = clerk.post("/member/lookup", {"name": "Wang Fang", "number": "M-001"})
    assert found.status_code == 200 and found.get_json()["id"] == member["id"]
    assert "credit_note" not in found.get_json()
    _problem(clerk.post("/member/lookup", {"name": "Wang", "number": "M-001"}), 404)
    _problem(clerk.post("/member/lookup", {}), 422)
    seller_id = shop.users.get("seller")["id"]
    deal = shop.records.create(SYSTEM, "deal", {"title": "Big", "secret": "floor 42",
                                                "owner": seller_id})
    seller = api_for(shop, "seller")
    assert "secret" not in seller.get(f"/deal/{deal['id']}").get_json()
    assert all("secret" not in r for r in seller.get("/deal").get_json()["items"])
    assert all("secret" not in str(r) for r in
               seller.get(f"/deal/{deal['id']}/history").get_json()["items"])
    _problem(seller.get("/deal?secret__contains=floor"), 422)
    meta = seller.get("/meta").get_json()
    deal_meta = next(e for e in meta["entities"] if e["key"] == "deal")
    assert "secret" not in {f["key"] for f in deal_meta["fields"]}
    doc = seller.get("/openapi.json").get_json()
    assert "secret" not in doc["components"]["schemas"]["Deal"]["properties"]
    assert "note" in {e["key"] for e in meta["entities"]}
    clerk_meta = clerk.get("/meta").get_json()
    assert {e["key"] for e in clerk_meta["entities"]} == {"member", "purchase"}
    assert [r["key"] for r in clerk_meta["roles"]] == ["clerk"]


def test_meta_describes_fields_stages_and_roles(site):
    meta = api_for(site, "rep").get("/meta").get_json()
    opp = next(e for e in meta["entities"] if e["key"] == "opportunity")
    fields = {f["key"]: f for f in opp["fields"]}
    assert fields["amount"]["type"] == "decimal" and fields["name"]["label"]
    stages = [s["key"] for s in opp["workflows"][0]["pipelines"][0]["stages"]]
    assert "won" in stages and "lost" in stages
    assert "delete" not in next(e for e in meta["entities"] if e["key"] == "customer")["rights"]
    assert [r["key"] for r in meta["roles"]] == ["sales"]


def test_openapi_document_validates(site):
    doc = api_for(site, "admin").get("/openapi.json").get_json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    opp = doc["components"]["schemas"]["Opportunity"]["properties"]
    assert opp["amount"]["type"] == ["string", "null"] and opp["amount"]["pattern"]
    assert opp["number"]["readOnly"] is True and opp["id"]["readOnly"] is True
    assert opp["name"]["maxLength"] == 200
    kind = doc["components"]["schemas"]["Customer"]["properties"]["kind"]
    assert "client" in kind["enum"]
    assert "/customer/{id}/transitions" not in doc["paths"]
    assert "/opportunity/{id}/transitions" in doc["paths"]
    assert doc["paths"]["/customer"]["post"]["responses"]["422"]
    app = create_app(site, testing=True)
    assert Api(app, None).get("/openapi.json").status_code == 401
