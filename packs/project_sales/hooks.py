"""Stage-flow rules of project sales that look beyond the record being moved.

A guard sees only the moved record, so the rules that depend on other
records — an approved proposal for the project, the quotation version the
client accepted, the suppliers taking part in the project, the purchase
orders, milestones and collections of a delivery — are hooks run by the
transitions in ``workflows/``. Each raises :class:`TransitionRefused` to undo
the whole transition, with a message in the actor's language. One rule holds
on every save instead: a collection's instalment belongs to its project
(``hooks: before_save`` in ``entities/collection.yaml``).

They read and write with the acting user given the workflow's rights (like
the records stage actions create): a salesperson who may take the transition
gets the check done over every proposal of the project, not only those in
their own scope, and the accepted version is recorded on the project even
though the field is read-only to them. A rule that reads other records and
writes the project (one accepted version) holds the project with
``records.locked`` first, so two transitions at once cannot both pass it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.pack_api import (
    Filter,
    HookContext,
    NotFound,
    Records,
    Refusal,
    TransitionRefused,
    with_pack_rights,
)


def _refuse(context: HookContext, en: str, zh: str) -> TransitionRefused:
    text = zh if context.actor.language == "zh" else en
    return TransitionRefused(text, [Refusal("hook", text)])


def _rows(context: HookContext, entity: str, *filters: Filter) -> list[dict[str, Any]]:
    records: Records = context.records
    actor = with_pack_rights(context.actor)
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = records.list(actor, entity, filters=list(filters), sort=(), limit=500,
                            offset=offset, with_total=False, conn=context.conn)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += 500


# -- the pre-sale flow -------------------------------------------------------------------


def require_approved_proposal(context: HookContext) -> None:
    """No quotation stage without an approved proposal version of the project."""
    approved = _rows(context, "proposal", Filter("project", "eq", context.record["id"]),
                     Filter("stage", "eq", "approved"))
    if not approved:
        raise _refuse(context, "A quotation needs an approved proposal of this project.",
                      "报价前须有一个评审通过的方案版本。")


def accept_quotation(context: HookContext) -> None:
    """Record the accepted version on its project; a project accepts one version only."""
    quotation = context.record
    project_id = quotation["project"]
    actor = with_pack_rights(context.actor)
    # the project is held until this transition ends: a second version accepted at the same
    # time waits, then sees this one accepted
    project = context.records.locked(actor, "project", project_id, conn=context.conn)
    others = [q for q in _rows(context, "quotation", Filter("project", "eq", project_id),
                               Filter("stage", "eq", "accepted"))
              if q["id"] != quotation["id"]]
    if others:
        raise _refuse(context,
                      f"Version {others[0]['version_no']} of this project's quotation is already "
                      "accepted.",
                      f"本项目的报价第 {others[0]['version_no']} 版已被接受。")
    if project.get("stage") not in ("quotation", "negotiation"):
        raise _refuse(context, "A quotation is accepted while its project is being quoted or "
                      "negotiated.", "只有处于报价或商务谈判阶段的项目才能接受报价。")
    changes: dict[str, Any] = {"accepted_version": quotation["version_no"]}
    if not project.get("contract_value"):
        changes["contract_value"] = quotation.get("total")
    context.records.update(actor, "project", project_id, changes, version=project["version"],
                           conn=context.conn)


def check_accepted_quotation(context: HookContext) -> None:
    """Signing refers to a quotation version of this very project that the client accepted."""
    project = context.record
    accepted = _rows(context, "quotation", Filter("project", "eq", project["id"]),
                     Filter("version_no", "eq", project["accepted_version"]),
                     Filter("stage", "eq", "accepted"))
    if not accepted:
        raise _refuse(context, f"Version {project['accepted_version']} of this project's "
                      "quotation is not one the client accepted.",
                      f"本项目报价第 {project['accepted_version']} 版未被客户接受。")


# -- purchasing and delivery ----------------------------------------------------------------


def require_participating_supplier(context: HookContext) -> None:
    """A purchase order goes to a company taking part in the project as a supplier."""
    order = context.record
    actor = with_pack_rights(context.actor)
    project = context.records.get(actor, "project", order["project"], conn=context.conn)
    suppliers = {line["company"] for line in project.get("partners") or ()
                 if line.get("role") == "supplier"}
    if order["supplier"] not in suppliers:
        raise _refuse(context, "Order from one of the project's participating suppliers (add "
                      "the company to the project as a supplier first).",
                      "采购须向本项目参与单位中的供货方下单(请先将该单位加入项目的供货方)。")


def check_delivery_complete(context: HookContext) -> None:
    """Delivered: every purchase order received (or cancelled), every milestone done."""
    project_id = context.record["project"]
    waiting = [o["number"] for o in _rows(context, "purchase_order",
                                          Filter("project", "eq", project_id))
               if o.get("stage") not in ("received", "cancelled")]
    open_work = [m["name"] for m in _rows(context, "milestone",
                                          Filter("project", "eq", project_id))
                 if m.get("status") != "done"]
    if waiting or open_work:
        parts_en, parts_zh = [], []
        if waiting:
            parts_en.append("purchase orders not received: " + ", ".join(waiting))
            parts_zh.append("未到货的采购单:" + "、".join(waiting))
        if open_work:
            parts_en.append("milestones not done: " + ", ".join(open_work))
            parts_zh.append("未完成的里程碑:" + "、".join(open_work))
        raise _refuse(context, "Not everything is delivered — " + "; ".join(parts_en) + ".",
                      "尚未全部交付——" + ";".join(parts_zh) + "。")


def check_paid_in_full(context: HookContext) -> None:
    """Paid in full: the collections of the project add up to the contract value."""
    contract = context.record
    collected = sum((Decimal(str(c["amount"] or 0)) for c in _rows(
        context, "collection", Filter("project", "eq", contract["project"]))), Decimal(0))
    value = Decimal(str(contract["contract_value"] or 0))
    if collected < value:
        owed = value - collected
        raise _refuse(context, f"Collected {collected:,.2f} of {value:,.2f}: {owed:,.2f} is "
                      "still to be paid.", f"已回款 {collected:,.2f},合同金额 {value:,.2f},"
                      f"尚欠 {owed:,.2f}。")


# -- saving records ------------------------------------------------------------------------


def check_collection_instalment(context: Any) -> None:
    """A collection is against an instalment of its own project (which it may take from it)."""
    instalment_id = context.values.get("instalment")
    if instalment_id is None:
        return
    try:
        instalment = context.records.get(with_pack_rights(context.actor), "instalment",
                                          instalment_id, conn=context.conn)
    except NotFound:
        return  # validation reports the reference to a missing instalment
    if context.values.get("project") is None:
        context.values["project"] = instalment["project"]
    elif context.values["project"] != instalment["project"]:
        context.error("instalment", {"en": "The instalment belongs to another project.",
                                     "zh": "该付款节点属于其他项目。"})
