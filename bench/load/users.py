"""The simulated people: salespeople doing their day's mix, and two admins who keep
editing the same customers at the same moment.

Written for locust (https://locust.io) used as a library: locust gives the
users, their think time, the request statistics and the percentiles; this
module says what each person does and keeps, beside locust's figures, what
the checks at the end need (every status per action, each conflicting edit's
outcome).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust import HttpUser, between, task
from locust.clients import HttpSession

API = "/api/v1"
#: The next stage a salesperson moves an open opportunity to.
NEXT_STAGE = {"initial": "needs", "needs": "proposal", "proposal": "negotiation",
              "negotiation": "won"}
OPEN_STAGES = set(NEXT_STAGE)


@dataclass
class Scenario:
    """What the users of one phase share: tokens to log in with and what was observed."""

    sales_tokens: list[str]
    admin_tokens: list[str]
    contested: list[int]
    think: tuple[float, float] = (1.0, 3.0)
    statuses: Counter = field(default_factory=Counter)
    documented_503: int = 0
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    other_errors: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    _next_token: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self) -> str:
        with self._lock:
            if self._next_token is None:
                self._next_token = itertools.cycle(self.sales_tokens)
            return next(self._next_token)


def _code(response: Any) -> str | None:
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - a non-JSON body has no problem code
        return None
    return body.get("code") if isinstance(body, dict) else None


def call(scenario: Scenario, client: HttpSession, method: str, path: str, action: str,
         token: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
    """One request, recorded under ``action``; answers outside ``expect`` count as failures."""
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    with client.request(method, f"{API}{path}", name=action, headers=headers,
                        catch_response=True, **kwargs) as response:
        status = response.status_code
        scenario.statuses[(action, status)] += 1
        if status in expect:
            response.success()
            return response
        seen = {"action": action, "method": method, "path": path, "status": status,
                "code": _code(response), "body": (response.text or "")[:300]}
        if (status == 503 and response.headers.get("Retry-After")
                and seen["code"] == "definitions_changed"):
            scenario.documented_503 += 1
            response.failure("503 definitions_changed (documented, during the migration)")
        elif status >= 500 or status == 0:
            scenario.server_errors.append(seen)
            response.failure(f"{status} {seen['code'] or ''}")
        else:
            scenario.other_errors.append(seen)
            response.failure(f"{status} {seen['code'] or ''}")
        return response


def user_classes(scenario: Scenario) -> list[type[HttpUser]]:
    """Locust user classes bound to ``scenario`` (a class per run keeps runs apart)."""

    class Salesperson(HttpUser):
        wait_time = between(*scenario.think)

        def on_start(self) -> None:
            self.token = scenario.token()
            self.customers: list[int] = []
            self.opportunities: list[int] = []
            found = call(scenario, self.client, "GET", "/customer?limit=20&fields=name",
                         "open list", self.token)
            if found.status_code == 200:
                self.customers = [r["id"] for r in found.json()["items"]]
            found = call(scenario, self.client, "GET",
                         "/opportunity?limit=50&fields=name,stage", "open list", self.token)
            if found.status_code == 200:
                self.opportunities = [r["id"] for r in found.json()["items"]
                                      if r.get("stage") in OPEN_STAGES]

        def get(self, path: str, action: str) -> Any:
            return call(scenario, self.client, "GET", path, action, self.token)

        @task(4)
        def open_list(self) -> None:
            entity = random.choice(("customer", "opportunity", "activity"))
            self.get(f"/{entity}?limit=25&sort=-id", "open list")

        @task(4)
        def open_record(self) -> None:
            if self.opportunities and random.random() < 0.6:
                self.get(f"/opportunity/{random.choice(self.opportunities)}", "open record")
            elif self.customers:
                self.get(f"/customer/{random.choice(self.customers)}", "open record")

        @task(3)
        def record_visit(self) -> None:
            if not self.customers:
                return
            call(scenario, self.client, "POST", "/activity", "create visit record", self.token,
                 expect=(201,), json={
                     "subject": "Visit", "kind": "visit",
                     "customer": random.choice(self.customers), "done": True,
                     "outcome": "Went through the proposal with the buyer."})

        @task(2)
        def move_opportunity(self) -> None:
            if not self.opportunities:
                self.new_opportunity()
                return
            record_id = random.choice(self.opportunities)
            found = self.get(f"/opportunity/{record_id}", "open record")
            if found.status_code != 200:
                return
            record = found.json()
            stage = record.get("stage")
            if stage not in OPEN_STAGES:
                self.opportunities.remove(record_id)
                return
            body: dict[str, Any] = {"to": NEXT_STAGE[stage], "version": record["version"]}
            if stage == "needs" and random.random() < 0.2:
                body = {"to": "lost", "version": record["version"],
                        "values": {"lost_reason": "price"}}
            moved = call(scenario, self.client, "POST", f"/opportunity/{record_id}/transitions",
                         "move opportunity", self.token, json=body)
            if moved.status_code == 200 and body["to"] in ("won", "lost"):
                self.opportunities.remove(record_id)

        @task(1)
        def new_opportunity(self) -> None:
            if not self.customers:
                return
            made = call(scenario, self.client, "POST", "/opportunity", "create opportunity",
                        self.token, expect=(201,), json={
                            "name": "New deal", "customer": random.choice(self.customers),
                            "amount": "18000.00"})
            if made.status_code == 201:
                self.opportunities.append(made.json()["id"])

        @task(2)
        def open_dashboard(self) -> None:
            self.get("/dashboards/sales", "open dashboard")

    class AdminPair(HttpUser):
        """Two admins (two tokens, two connections) who read a customer, then both save it."""

        fixed_count = 1
        wait_time = between(0.2, 0.6)

        def on_start(self) -> None:
            self.other = HttpSession(base_url=self.host,
                                     request_event=self.environment.events.request, user=self)
            self.round = 0

        @task
        def edit_same_record(self) -> None:
            record_id = random.choice(scenario.contested)
            clients = (self.client, self.other)
            reads = [call(scenario, c, "GET", f"/customer/{record_id}", "admin read", t)
                     for c, t in zip(clients, scenario.admin_tokens, strict=True)]
            if any(r.status_code != 200 for r in reads):
                return
            versions = {r.json()["version"] for r in reads}
            if len(versions) != 1:
                return
            version = versions.pop()
            self.round += 1
            values = [f"admin{n + 1} round {self.round}" for n in range(2)]

            # Recorded before sending, filled by the saves themselves: a save still in
            # flight when the run stops is counted all the same.
            outcome: dict[str, Any] = {"record": record_id, "version": version,
                                       "statuses": [None, None], "values": values}
            scenario.rounds.append(outcome)

            def save(n: int) -> None:
                outcome["statuses"][n] = call(
                    scenario, clients[n], "PATCH", f"/customer/{record_id}",
                    "admin concurrent edit", scenario.admin_tokens[n], expect=(200, 409),
                    headers={"If-Match": f'"{version}"'}, json={"notes": values[n]},
                ).status_code

            gevent.joinall([gevent.spawn(save, n) for n in range(2)])

    return [Salesperson, AdminPair]
