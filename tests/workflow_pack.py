"""A small sales pack with stage flows, shared by the workflow tests.

Deals move through two pipelines (projects, the default, and services);
winning a project deal runs every kind of action.  Complaints have a 24-hour
SLA on receipt and a business-hours SLA on the answer.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from engine.context import FixedClock
from engine.site import Site
from engine.testing import open_pack_site, write_pack

NOW = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai

#: The entities of the pack, also the base of the definition tests' small packs.
ENTITY_FILES = {
    "entities/customer.yaml": """
        entity: customer
        fields:
          name: {type: string, required: true}
    """,
    "entities/deal.yaml": """
        entity: deal
        label: {en: Deal, zh: 商机}
        fields:
          name: {type: string, required: true}
          customer: {type: reference, to: customer}
          amount: {type: decimal, precision: 14, scale: 2, label: {en: Amount, zh: 金额}}
          probability: {type: integer, min: 0, max: 100}
          close_on: {type: date, label: {en: Close date, zh: 成交日期}}
          lost_reason:
            type: choice
            label: {en: Lost reason, zh: 丢单原因}
            choices: {price: {en: Price, zh: 价格}, competitor: {en: Competitor, zh: 竞争对手}}
          note: {type: text}
          won_on: {type: date}
          contract: {type: reference, to: contract, on_delete: set_null}
          team: {type: choice, choices: {north: North, south: South}}
    """,
    "entities/contract.yaml": """
        entity: contract
        fields:
          title: {type: string, required: true}
          customer: {type: reference, to: customer}
          amount: {type: decimal, precision: 14, scale: 2}
    """,
    "entities/task.yaml": """
        entity: task
        fields:
          subject: {type: string, required: true}
          deal: {type: reference, to: deal, on_delete: cascade}
          due_at: {type: datetime}
          done: {type: boolean, default: false}
    """,
}

FILES = {
    **ENTITY_FILES,
    "entities/complaint.yaml": """
        entity: complaint
        fields:
          subject: {type: string, required: true}
    """,
    "roles.yaml": """
        roles:
          sales:
            label: {en: Salesperson, zh: 销售员}
            entities:
              "*": {rights: all, scope: all}
          manager:
            label: {en: Sales manager, zh: 销售经理}
            entities:
              "*": {rights: all, scope: all}
          assistant:
            label: {en: Assistant, zh: 助理}
            entities:
              "*": {rights: all, scope: all}
    """,
    "workflows/deal.yaml": """
        workflow: deal_flow
        entity: deal
        label: {en: Deals, zh: 商机流程}
        probability_field: probability
        figures:
          value: amount
          close_date: close_on
          lost_reason: lost_reason
          activity: [{entity: task, field: deal}]
        pipelines:
          projects:
            label: {en: Projects, zh: 项目}
            stages:
              lead: {label: {en: Lead, zh: 线索}, probability: 10, stale_after: 7d}
              proposal:
                label: {en: Proposal, zh: 方案}
                probability: 50
                requires: [amount]
                stale_after: 7d
              negotiation: {label: {en: Negotiation, zh: 谈判}, probability: 80, stale_after: 3d}
              won:
                label: {en: Won, zh: 赢单}
                category: won
                requires: [close_on]
                readonly: [amount]
                on_enter:
                  - set_expression: {won_on: "today()"}
                  - create:
                      entity: contract
                      store_in: contract
                      values: {title: "'Contract: ' + name", customer: customer, amount: amount}
                  - follow_up:
                      entity: task
                      due_in: 2d
                      link: deal
                      values: {subject: "'Kick-off ' + name"}
                  - notify:
                      to: [owner, role:manager]
                      subject: {en: "Won: {name}", zh: "赢单:{name}"}
                      message: {en: "{name} was won at {amount}.", zh: "{name} 以 {amount} 赢单。"}
                  - hook: on_won
              lost: {label: {en: Lost, zh: 丢单}, category: lost}
            transitions:
              propose: {from: lead, to: proposal, label: {en: Send proposal, zh: 提交方案}}
              negotiate: {from: proposal, to: negotiation}
              win:
                from: negotiation
                to: won
                label: {en: Mark as won, zh: 标记为赢单}
                roles: [sales, manager]
                guard: "amount > 0 and customer != null"
                guard_message:
                  en: A won deal needs an amount and a customer.
                  zh: 赢单需要金额和客户。
                confirm: {en: Win it?, zh: 确认赢单?}
              lose: {from: "*", to: lost, label: {en: Mark as lost, zh: 标记为丢单},
                     fields: [lost_reason]}
              reopen: {from: [won, lost], to: proposal, roles: [manager]}
          services:
            label: {en: Services, zh: 服务}
            stages:
              call: {probability: 20}
              won: {category: won}
              lost: {category: lost}
            transitions:
              win: {from: call, to: won}
              lose: {from: call, to: lost, fields: [lost_reason]}
    """,
    "workflows/complaint.yaml": """
        workflow: complaint_flow
        entity: complaint
        business_hours: {timezone: Asia/Shanghai, days: [mon, tue, wed, thu, fri],
                         start: "09:00", end: "18:00"}
        stages:
          received: {label: {en: Received, zh: 已受理}, sla: 24h}
          answered: {label: {en: Answered, zh: 已答复}, sla: {within: 8h, business_hours: true}}
          closed: {label: {en: Closed, zh: 已关闭}, category: won}
        transitions:
          answer: {from: received, to: answered}
          close: {from: answered, to: closed}
    """,
    "hooks.py": '''
        """Hooks of the test pack: each gets the transition's context and nothing else."""

        from engine.errors import Refusal, TransitionRefused


        def on_won(context):
            if context.record["amount"] > 1_000_000:
                raise TransitionRefused("Too big for a salesperson.", [
                    Refusal("hook", "Deals above 1,000,000 need the board.")])
            return {"note": f"won by {context.actor.login} from {context.from_stage}"}
    ''',
}


def open_flow_site(tmp_path: Path, url: str, *, clock: FixedClock | None = None) -> Site:
    """The sales pack on a fresh database, with an admin and users for each role."""
    write_pack(tmp_path / "packs", "sales", FILES)
    kit = open_pack_site(tmp_path / "site", url, ["sales"], pack_paths=[tmp_path / "packs"],
                         clock=clock or FixedClock(NOW))
    site = kit.site
    site.users.create("li", password=None, roles=["sales"])
    site.users.create("wang", password=None, roles=["manager"], language="zh")
    site.users.create("intern", password=None, roles=["assistant"])
    return site
