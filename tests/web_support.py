"""Helpers for the web UI tests: a migrated core site, an app and logged-in clients."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: FlaskClient) -> str:
    """This client's CSRF token (a page is fetched first when the session has none)."""
    with client.session_transaction() as session:
        token = session.get("csrf_token")
    if token:
        return token
    page = client.get("/login").get_data(as_text=True)
    match = TOKEN.search(page)
    assert match, "no CSRF token on the login page"
    return match.group(1)


def post(client: FlaskClient, path: str, data: dict | None = None, **kwargs):
    """A POST with the session's CSRF token, as a form on our pages sends it."""
    return client.post(path, data={"csrf_token": csrf(client), **(data or {})}, **kwargs)


def login(client: FlaskClient, name: str, password: str):
    return post(client, "/login", {"login": name, "password": password})


def _sample(field, created: dict, today) -> object:
    """A value that fits ``field`` (the first record of a referenced entity)."""
    kind = field.value_type
    if kind == "choice":
        first = next(iter(field.choices))
        return [first] if field.multiple else first
    if kind == "reference":
        return created[field.to]["id"]
    if kind == "many_to_many":
        return [created[field.to]["id"]]
    if kind in ("integer", "decimal"):
        return str(max(field.min or 0, 1))
    samples = {"boolean": False, "date": today.isoformat(), "datetime": f"{today}T09:00:00",
               "email": "someone@example.com", "phone": "+86 21 5555 0000",
               "url": "https://example.com", "json": {}}
    return samples.get(kind, f"Sample {field.key}")


def sample_records(site, actor) -> dict[str, dict]:
    """One record of every entity, its required fields filled, references first.

    Generic on purpose: the pages are tested for whatever entities the packs
    declare, without the tests knowing their fields.
    """
    from engine.errors import ValidationFailed

    today = site.clock.now().date()
    created: dict[str, dict] = {}
    problems: dict[str, object] = {}
    for _ in range(len(site.registry.entities) + 1):
        for key, entity in site.registry.entities.items():
            if key in created:
                continue
            values: dict = {}
            try:
                for field in entity.fields.values():
                    if not field.is_input:
                        continue
                    if field.type == "lines":
                        line = {s.key: _sample(s, created, today)
                                for s in field.fields.values() if s.required and s.is_input}
                        values[field.key] = [line] if field.required or line else []
                    elif field.required or field.key == entity.title_field:
                        values[field.key] = _sample(field, created, today)
                for _attempt in range(3):  # fields required by a condition: fill and retry
                    try:
                        created[key] = site.records.create(actor, key, values)
                        break
                    except ValidationFailed as exc:
                        problems[key] = exc.errors
                        wanted = [k for k in exc.errors if k in entity.fields and k not in values]
                        if not wanted:
                            break
                        for name in wanted:
                            values[name] = _sample(entity.fields[name], created, today)
            except KeyError as missing:  # a referenced entity has no record yet
                problems[key] = f"waiting for {missing}"
    missing = {k: v for k, v in problems.items() if k not in created}
    assert not missing, f"could not create sample records: {missing}"
    return created
