"""Figures a stage flow gives for free, as service queries.

Dashboards, the API, reports and the CLI all ask this service, so they
show the same numbers.  Every query goes through the record service's
access policy: the actor needs the ``read`` right on the entity and sees
only the rows its row scope lets it see; archived records are left out.

How the figures are defined (also in docs/workflows.md):

- *time in stage*: from entering a stage (a stage-history row, or the
  record's creation for its first stage) to leaving it, or to now;
- *average time per stage*: over completed stays only (the history's
  ``seconds_in_previous``);
- *cycle time*: from creation to the last move into a won or lost stage,
  for records that are won or lost now;
- *SLA*: due = entering the stage + the stage's ``sla`` (calendar time, or
  working time with ``business_hours``); overdue when now is past due;
- *stale*: an open stage's ``stale_after`` passed since the last activity,
  which is the latest of: any change to the record (its ``updated_at`` —
  every audited write and every transition moves it), and the creation or
  change of a record of a declared ``figures.activity`` entity pointing at
  it;
- *weighted value*: value × probability / 100 for records in open stages,
  where the probability is the record's ``probability_field`` when the
  workflow has one and it is set, else the stage's probability; a record's
  weighted value is rounded to the cent, a group's is the exact sum of its
  records' products rounded once (so a total never drifts by the rounding
  of thousands of records);
- *win rate*: won ÷ (won + lost) among closed records, by count and value.

Figures over many records are computed by the database — one ``GROUP BY``
whose groups (stage, pipeline, probability and the grouping key) are few —
so a dashboard costs the same whether a client has a thousand deals or a
million; only the per-record lists (weighted records, SLA, stale, cycle
times) read rows, and those are narrowed in SQL to the stages that can
qualify.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, false, func, null, or_, select, true

from engine.context import Actor, Clock
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.i18n import message
from engine.metadata.durations import zone
from engine.metadata.model import Entity
from engine.metadata.values import to_json
from engine.metadata.workflow_model import Pipeline, Stage, Workflow, workflow_for
from engine.services.records.service import RecordService

PERIODS = ("month", "quarter", "year")
#: Conditions narrowing a figure's rows beyond the row scope (``PipelineService.within``).
Narrow = Callable[[Entity, Workflow, Table], list[ColumnElement[bool]]]


def _dict(item: Any) -> dict[str, Any]:
    return to_json(asdict(item))


@dataclass(frozen=True)
class StageStay:
    stage: str
    label: str
    entered_at: dt.datetime
    left_at: dt.datetime | None
    seconds: int

    to_dict = _dict


@dataclass(frozen=True)
class StageAverage:
    stage: str
    label: str
    stays: int
    average_seconds: float | None

    to_dict = _dict


@dataclass(frozen=True)
class CycleTime:
    record_id: int
    title: Any
    outcome: str
    seconds: int

    to_dict = _dict


@dataclass(frozen=True)
class CycleSummary:
    won: int
    lost: int
    average_won_seconds: float | None
    average_lost_seconds: float | None
    records: tuple[CycleTime, ...]

    to_dict = _dict


@dataclass(frozen=True)
class SlaStatus:
    record_id: int
    title: Any
    stage: str
    entered_at: dt.datetime
    due_at: dt.datetime
    overdue: bool
    overdue_seconds: int

    to_dict = _dict


@dataclass(frozen=True)
class StaleRecord:
    record_id: int
    title: Any
    stage: str
    last_activity: dt.datetime
    idle_seconds: int
    stale_after_seconds: int

    to_dict = _dict


@dataclass(frozen=True)
class WeightedRecord:
    record_id: int
    title: Any
    stage: str
    owner: int | None
    value: Decimal
    probability: Decimal
    weighted: Decimal

    to_dict = _dict


@dataclass(frozen=True)
class PipelineGroup:
    key: Any
    label: str
    count: int
    value: Decimal
    weighted: Decimal

    to_dict = _dict


@dataclass(frozen=True)
class WinRate:
    won: int
    lost: int
    rate: Decimal | None
    won_value: Decimal
    lost_value: Decimal
    value_rate: Decimal | None

    to_dict = _dict


@dataclass(frozen=True)
class LostReason:
    reason: Any
    label: str
    count: int
    value: Decimal
    share: Decimal

    to_dict = _dict


def _activity_key(entity: str, field: str) -> str:
    return f"activity__{entity}__{field}"


def _rate(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"))


class PipelineService:
    """Pipeline figures of the entities that have a workflow; see the module docstring."""

    def __init__(self, records: RecordService, *, clock: Clock | None = None,
                 timezone: str = "Asia/Shanghai") -> None:
        self.records = records
        self.registry = records.registry
        self.schema = records.schema
        self.engine = records.engine
        self.clock = clock or records.clock
        self.timezone = timezone
        #: Extra conditions every figure's rows meet (a dashboard's filter); see :meth:`within`.
        self.narrow: Narrow | None = None

    def within(self, narrow: Narrow | None) -> PipelineService:
        """This service with every figure narrowed by ``narrow(entity, workflow, table)``
        (a dashboard's period, team and owner), on top of the actor's row scope."""
        other = copy.copy(self)
        other.narrow = narrow
        return other

    # -- plumbing ----------------------------------------------------------

    def _setup(self, actor: Actor, entity_key: str) -> tuple[Entity, Workflow, Table]:
        entity = self.records.entity(entity_key)
        if not self.records.policy.can(actor, entity, "read"):
            raise PermissionDenied(f"You may not read {entity.plural.get(actor.language)}.")
        workflow = workflow_for(self.registry.workflows, entity.key)
        if workflow is None:
            raise NotFound(message("no_workflow", actor.language,
                                   entity=entity.label.get(actor.language)))
        return entity, workflow, self.schema.table(entity.key)

    def _where(self, actor: Actor, entity: Entity, workflow: Workflow, table: Table,
               pipeline: str | None) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [table.c.archived.is_(False)]
        scope = self.records.policy.row_filter(actor, entity, table)
        if scope is not None:
            where.append(scope)
        if self.narrow is not None:
            where.extend(self.narrow(entity, workflow, table))
        if pipeline is not None:
            if pipeline not in workflow.pipelines:
                raise ValidationFailed({"pipeline": [
                    f"There is no pipeline '{pipeline}'; the pipelines are: "
                    f"{', '.join(workflow.pipelines)}."]})
            if workflow.pipeline_field:
                column = table.c[workflow.pipeline_field]
                if pipeline == workflow.default_pipeline:
                    where.append(or_(column == pipeline, column.is_(None)))
                else:
                    where.append(column == pipeline)
        return where

    def _moved_at(self, entity: Entity, table: Table) -> Any:
        """When each row last changed stage: its newest stage-history row.

        A correlated subquery, answered per row from the (entity, record_id)
        index, so its cost follows the rows asked for, not the history's size.
        """
        history = self.schema.system("crm_stage_history")
        return (select(history.c.at)
                .where(history.c.entity == entity.key, history.c.record_id == table.c.id)
                .order_by(history.c.id.desc()).limit(1)
                .correlate(table).scalar_subquery())

    def _stage_filter(self, workflow: Workflow, table: Table,
                      keep: Callable[[Stage], bool]) -> ColumnElement[bool]:
        """Rows whose stage may satisfy ``keep``, for the database to narrow by.

        A row with no stage, or one no pipeline knows, is in its pipeline's
        initial stage (``Workflow.stage_of``); the exact test per row or group
        is made again in Python, so this only has to keep every row that may
        qualify.
        """
        column = table.c[workflow.field]
        known: set[str] = set()
        kept: set[str] = set()
        initial = False
        for each in workflow.pipelines.values():
            known.update(each.stages)
            kept.update(k for k, stage in each.stages.items() if keep(stage))
            initial = initial or keep(each.stages[each.initial])
        conditions: list[ColumnElement[bool]] = [column.in_(sorted(kept))] if kept else []
        if initial:
            conditions += [column.is_(None), column.not_in(sorted(known))]
        return or_(*conditions) if conditions else false()

    def _stage_of(self, workflow: Workflow, row: Mapping[str, Any]) -> Stage:
        """The stage of a grouped row (its ``stage`` and ``pipeline`` columns)."""
        record = {workflow.field: row["stage"]}
        if workflow.pipeline_field:
            record[workflow.pipeline_field] = row.get("pipeline")
        return workflow.stage_of(record)

    def _rows(self, actor: Actor, entity_key: str, pipeline: str | None,
              ids: Collection[int] | None = None,
              keep: Callable[[Stage], bool] | None = None,
              ) -> tuple[Entity, Workflow, list[dict[str, Any]]]:
        """The visible records with the time of their last stage change (``moved_at``).

        ``ids`` limits them to those records (a board's cards): the work then
        follows the page shown, not the size of the table.  ``keep`` narrows
        them, in SQL, to the records whose stage may satisfy it.
        """
        entity, workflow, table = self._setup(actor, entity_key)
        only = list(ids) if ids is not None else None
        columns: list[Any] = [table, self._moved_at(entity, table).label("moved_at")]
        joined: Any = table
        for link in workflow.figures.activity:
            other = self.schema.table(link.entity)
            latest = (
                select(other.c[link.field].label("target"),
                       func.max(other.c.updated_at).label("at"))
                .where(other.c[link.field].is_not(None),
                       *([other.c[link.field].in_(only)] if only is not None else []))
                .group_by(other.c[link.field])
                .subquery()
            )
            joined = joined.outerjoin(latest, latest.c.target == table.c.id)
            columns.append(latest.c.at.label(_activity_key(link.entity, link.field)))
        query = (
            select(*columns)
            .select_from(joined)
            .where(*self._where(actor, entity, workflow, table, pipeline),
                   *([table.c.id.in_(only)] if only is not None else []),
                   *([self._stage_filter(workflow, table, keep)] if keep is not None else []))
            .order_by(table.c.id)
        )
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        hidden = self._hidden(actor, entity)
        for row in rows:
            for name in hidden & row.keys():
                row[name] = None
        return entity, workflow, rows

    def _hidden(self, actor: Actor, entity: Entity) -> frozenset[str]:
        rule = getattr(self.records.policy, "hidden_fields", None)
        return frozenset(rule(actor, entity)) if rule is not None else frozenset()

    def _require(self, actor: Actor, entity_key: str, *names: str | None) -> None:
        """Refuse figures built on a field the actor may not see (a sum would reveal it)."""
        entity, workflow, _ = self._setup(actor, entity_key)
        hidden = [n for n in names if n and n in self._hidden(actor, entity)]
        if hidden:
            labels = ", ".join(entity.fields[n].label.get(actor.language)
                               if n in entity.fields else n for n in hidden)
            raise PermissionDenied(f"These figures are built on {labels}, which you may not see.")

    def _title(self, entity: Entity, row: Mapping[str, Any]) -> Any:
        return row.get(entity.title_field) if entity.title_field else row["id"]

    @staticmethod
    def _entered(row: Mapping[str, Any]) -> dt.datetime:
        return row.get("moved_at") or row["created_at"]

    def _probability(self, workflow: Workflow, stage: Stage, row: Mapping[str, Any]) -> Decimal:
        own = row.get(workflow.probability_field) if workflow.probability_field else None
        if own is not None:
            return Decimal(own)
        return Decimal(stage.probability or 0)

    def _value(self, workflow: Workflow, row: Mapping[str, Any]) -> Decimal:
        name = workflow.figures.value
        return Decimal(row.get(name) or 0) if name else Decimal(0)

    # -- per record ------------------------------------------------------------

    def time_in_stages(self, actor: Actor, entity_key: str, record_id: Any) -> list[StageStay]:
        """Each stay of one record in a stage, oldest first; the last one runs until now."""
        entity, workflow, _ = self._setup(actor, entity_key)
        record = self.records.get(actor, entity.key, record_id)
        history = self.schema.system("crm_stage_history")
        with self.engine.connect() as conn:
            moves = list(conn.execute(
                select(history).where(history.c.entity == entity.key,
                                      history.c.record_id == record["id"])
                .order_by(history.c.id)
            ).mappings())
        pipeline = workflow.pipeline_of(record)
        language = actor.language
        stays = []
        stage = moves[0]["from_stage"] if moves else workflow.stage_of(record).key
        entered = record["created_at"]
        for move in moves:
            stays.append(self._stay(pipeline, stage, entered, move["at"], language))
            stage, entered = move["to_stage"], move["at"]
        stays.append(self._stay(pipeline, stage, entered, None, language))
        return stays

    def _stay(self, pipeline: Pipeline, stage: str, entered: dt.datetime,
              left: dt.datetime | None, language: str) -> StageStay:
        end = left or self.clock.now()
        found = pipeline.stage(stage)
        label = found.label.get(language) if found else stage
        return StageStay(stage, label, entered, left, max(0, int((end - entered).total_seconds())))

    # -- over many records ----------------------------------------------------------

    def average_time_in_stage(self, actor: Actor, entity_key: str, *,
                              pipeline: str | None = None) -> list[StageAverage]:
        """Average completed stay per stage, in stage order (stages nobody left yet: None)."""
        entity, workflow, table = self._setup(actor, entity_key)
        history = self.schema.system("crm_stage_history")
        query = (
            select(history.c.from_stage, func.count(), func.avg(history.c.seconds_in_previous))
            .select_from(history.join(table, table.c.id == history.c.record_id))
            .where(history.c.entity == entity.key,
                   *self._where(actor, entity, workflow, table, pipeline))
            .group_by(history.c.from_stage)
        )
        if pipeline is not None:
            query = query.where(history.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            found = {stage: (count, avg) for stage, count, avg in conn.execute(query)}
        result = []
        for key, stage in self._stages(workflow, pipeline).items():
            count, avg = found.get(key, (0, None))
            result.append(StageAverage(key, stage.label.get(actor.language), count,
                                       float(avg) if avg is not None else None))
        return result

    def _stages(self, workflow: Workflow, pipeline: str | None) -> dict[str, Stage]:
        if pipeline is not None:
            return dict(workflow.pipelines[pipeline].stages)
        stages: dict[str, Stage] = {}
        for each in workflow.pipelines.values():
            for key, stage in each.stages.items():
                stages.setdefault(key, stage)
        return stages

    def cycle_times(self, actor: Actor, entity_key: str, *,
                    pipeline: str | None = None) -> CycleSummary:
        """From creation to won or lost, for the records that are won or lost now."""
        entity, workflow, rows = self._rows(actor, entity_key, pipeline,
                                            keep=lambda stage: stage.is_closed)
        records = []
        for row in rows:
            stage = workflow.stage_of(row)
            if stage.is_closed:
                seconds = int((self._entered(row) - row["created_at"]).total_seconds())
                records.append(CycleTime(row["id"], self._title(entity, row), stage.category,
                                         max(0, seconds)))

        def average(outcome: str) -> float | None:
            values = [r.seconds for r in records if r.outcome == outcome]
            return sum(values) / len(values) if values else None

        return CycleSummary(
            won=sum(r.outcome == "won" for r in records),
            lost=sum(r.outcome == "lost" for r in records),
            average_won_seconds=average("won"), average_lost_seconds=average("lost"),
            records=tuple(records),
        )

    def sla(self, actor: Actor, entity_key: str, *, pipeline: str | None = None,
            overdue_only: bool = False, ids: Collection[int] | None = None) -> list[SlaStatus]:
        """Records in a stage with an SLA: when they fall due, and whether they are overdue
        (of the records ``ids`` only, when given)."""
        entity, workflow, rows = self._rows(
            actor, entity_key, pipeline, ids,
            keep=lambda stage: stage.sla is not None and not stage.is_closed)
        now = self.clock.now()
        found = []
        for row in rows:
            stage = workflow.stage_of(row)
            if stage.sla is None or stage.is_closed:
                continue
            entered = self._entered(row)
            due = stage.sla.due(entered, workflow.business_hours)
            late = max(0, int((now - due).total_seconds()))
            status = SlaStatus(row["id"], self._title(entity, row), stage.key, entered, due,
                               now > due, late)
            if status.overdue or not overdue_only:
                found.append(status)
        found.sort(key=lambda s: s.due_at)
        return found

    def overdue(self, actor: Actor, entity_key: str, *, pipeline: str | None = None,
                ids: Collection[int] | None = None) -> list[SlaStatus]:
        """Records past their stage's SLA, the longest overdue first."""
        return self.sla(actor, entity_key, pipeline=pipeline, overdue_only=True, ids=ids)

    def stale(self, actor: Actor, entity_key: str, *, pipeline: str | None = None,
              ids: Collection[int] | None = None) -> list[StaleRecord]:
        """Records idle for longer than their open stage's ``stale_after``, idlest first."""
        found = [r for r in self.idle(actor, entity_key, pipeline=pipeline, stale_only=True,
                                      ids=ids)
                 if r.idle_seconds > r.stale_after_seconds]
        found.sort(key=lambda s: -s.idle_seconds)
        return found

    def idle(self, actor: Actor, entity_key: str, *, pipeline: str | None = None,
             stale_only: bool = False, ids: Collection[int] | None = None
             ) -> list[StaleRecord]:
        """Every record in an open stage with its last activity (reminders measure their own
        idle time from it); ``stale_after_seconds`` is 0 where the stage sets none."""
        entity, workflow, rows = self._rows(
            actor, entity_key, pipeline, ids,
            keep=lambda stage: not stage.is_closed and not (stale_only
                                                            and stage.stale_after is None))
        now = self.clock.now()
        found = []
        for row in rows:
            stage = workflow.stage_of(row)
            if stage.is_closed or (stale_only and stage.stale_after is None):
                continue
            moments = [row["updated_at"], self._entered(row)] + [
                row[_activity_key(link.entity, link.field)] for link in workflow.figures.activity
                if row.get(_activity_key(link.entity, link.field)) is not None
            ]
            last = max(moments)
            limit = int(stage.stale_after.total_seconds()) if stage.stale_after else 0
            found.append(StaleRecord(row["id"], self._title(entity, row), stage.key, last,
                                     int((now - last).total_seconds()), limit))
        return found

    def weighted_records(self, actor: Actor, entity_key: str, *,
                         pipeline: str | None = None) -> list[WeightedRecord]:
        """Open records with value × probability, the largest weighted value first.

        Two records at the same probability are told apart by their value:
        800,000 at 80% (640,000) comes before 240,000 at 80% (192,000).
        """
        self._require_weights(actor, entity_key)
        entity, workflow, rows = self._rows(actor, entity_key, pipeline,
                                            keep=lambda stage: not stage.is_closed)
        return [record for record, _ in self._weighted(entity, workflow, rows)]

    def _require_weights(self, actor: Actor, entity_key: str) -> Workflow:
        _, workflow, _ = self._setup(actor, entity_key)
        self._require(actor, entity_key, workflow.figures.value, workflow.probability_field)
        return workflow

    def _weighted(self, entity: Entity, workflow: Workflow, rows: list[dict[str, Any]]
                  ) -> list[tuple[WeightedRecord, dict[str, Any]]]:
        found = []
        for row in rows:
            stage = workflow.stage_of(row)
            if stage.is_closed:
                continue
            value = self._value(workflow, row)
            probability = self._probability(workflow, stage, row)
            weighted = (value * probability / 100).quantize(Decimal("0.01"))
            found.append((WeightedRecord(row["id"], self._title(entity, row), stage.key,
                                         row.get("owner"), value, probability, weighted), row))
        found.sort(key=lambda item: (-item[0].weighted, -item[0].value, item[0].record_id))
        return found

    def weighted_pipeline(self, actor: Actor, entity_key: str, *, by: str = "stage",
                          period: str = "month", pipeline: str | None = None
                          ) -> list[PipelineGroup]:
        """Open value and weighted value grouped by stage, owner, close period or a field.

        ``by`` is ``stage``, ``owner``, ``period`` (of the expected close
        date, by ``period``: month, quarter or year) or the key of one of
        the entity's fields (a team, a region, a product line...).
        """
        workflow = self._require_weights(actor, entity_key)
        self._require(actor, entity_key, workflow.figures.close_date if by == "period" else by)
        entity, workflow, table = self._setup(actor, entity_key)
        if by == "period" and (period not in PERIODS or workflow.figures.close_date is None):
            raise ValidationFailed({"period": [
                f"Periods are {', '.join(PERIODS)}, of the workflow's figures.close_date."]})
        named = {"key": self._group_column(entity, workflow, table, by),
                 "probability": self._column(table, workflow.probability_field)}
        value = self._column(table, workflow.figures.value)
        found = self._grouped(
            actor, entity, workflow, table, pipeline, named,
            where=[self._stage_filter(workflow, table, lambda stage: not stage.is_closed)],
            value=value)
        groups: dict[Any, list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
        for row in found:
            stage = self._stage_of(workflow, row)
            if stage.is_closed:
                continue
            chance = (Decimal(row["probability"]) if row["probability"] is not None
                      else Decimal(stage.probability or 0))
            total = Decimal(row["value"] or 0)
            key = self._group_key(by, period, stage, row["key"])
            totals = groups[key]
            totals[0] += row["count"]
            totals[1] += total
            totals[2] += total * chance / 100
        stages = self._stages(workflow, pipeline)
        order = list(stages) if by == "stage" else sorted(
            groups, key=lambda k: (k is None, str(k)))
        labels = self._labels(by, entity, stages, groups, actor.language)
        cent = Decimal("0.01")
        return [PipelineGroup(k, labels.get(k, str(k)), groups[k][0], groups[k][1],
                              groups[k][2].quantize(cent)) for k in order if k in groups]

    @staticmethod
    def _column(table: Table, name: str | None) -> Any:
        return table.c[name] if name else None

    def _grouped(self, actor: Actor, entity: Entity, workflow: Workflow, table: Table,
                 pipeline: str | None, named: Mapping[str, Any], *,
                 where: Sequence[ColumnElement[bool]], value: Any,
                 source: Any = None) -> list[Mapping[str, Any]]:
        """Count and value total per stage, pipeline and the ``named`` expressions, in SQL.

        The visible rows are selected first (scope, pipeline, ``where``) with
        each expression named, then grouped on those names: the groups are
        few whatever the number of rows.  A ``named`` expression that is None
        comes back as None.  ``source`` is the table joined to what the
        expressions need (its rows are still the table's).
        """
        columns = {"stage": table.c[workflow.field],
                   "pipeline": self._column(table, workflow.pipeline_field), **named}
        rows = (
            select(*[(c if c is not None else null()).label(k) for k, c in columns.items()],
                   (value if value is not None else null()).label("value"))
            .select_from(source if source is not None else table)
            .where(*self._where(actor, entity, workflow, table, pipeline), *where)
            .subquery()
        )
        keys = [rows.c[k] for k in columns]
        query = select(*keys, func.count().label("count"),
                       func.sum(rows.c.value).label("value")).group_by(*keys)
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings())

    def _group_column(self, entity: Entity, workflow: Workflow, table: Table, by: str) -> Any:
        """The column a weighted pipeline groups by (stage: the stage column itself)."""
        if by == "stage":
            return table.c[workflow.field]
        if by == "owner":
            return table.c.owner if "owner" in table.c else None
        if by == "period":
            return table.c[workflow.figures.close_date or ""]
        if by not in entity.fields or by not in table.c:
            raise ValidationFailed({"by": [f"Group by stage, owner, period or a stored field "
                                           f"of {entity.key}; '{by}' is none of them."]})
        return table.c[by]

    def _group_key(self, by: str, period: str, stage: Stage, value: Any) -> Any:
        if by == "stage":
            return stage.key
        if by == "period":
            return self._period(value, period)
        return tuple(value) if isinstance(value, list) else value

    def _period(self, day: Any, period: str) -> str | None:
        """The month, quarter or year of a close date, in the site's time zone."""
        if day is None:
            return None
        if isinstance(day, dt.datetime):
            day = day.astimezone(zone(self.timezone)).date()
        if period == "month":
            return f"{day.year}-{day.month:02d}"
        if period == "quarter":
            return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
        return str(day.year)

    def _labels(self, by: str, entity: Entity, stages: Mapping[str, Stage],
                groups: Mapping[Any, Any], language: str) -> dict[Any, str]:
        if by == "stage":
            return {k: s.label.get(language) for k, s in stages.items()}
        if by == "owner":
            users = self.schema.system("crm_user")
            ids = [k for k in groups if k is not None]
            with self.engine.connect() as conn:
                names = dict(conn.execute(select(users.c.id, users.c.display_name)
                                          .where(users.c.id.in_(ids))).all()) if ids else {}
            return {k: names.get(k, "—") if k is not None else "—" for k in groups}
        field = entity.fields.get(by)
        if field is not None and field.choices:
            return {k: field.choices[k].get(language) if k in field.choices else str(k)
                    for k in groups}
        return {k: "—" if k is None else str(k) for k in groups}

    def _closing(self, entity: Entity, workflow: Workflow, table: Table) -> tuple[Any, Any]:
        """When each closed record closed: its newest move into a closed stage (its creation
        when it never moved), all of them in one grouped pass over the history's (entity,
        to_stage, at) index — a record in a closed stage got there by its newest move.
        Returns the moves subquery (join it on ``record_id``) and the moment expression."""
        history = self.schema.system("crm_stage_history")
        closing = sorted({key for each in workflow.pipelines.values()
                          for key, stage in each.stages.items() if stage.is_closed})
        moves = (select(history.c.record_id, func.max(history.c.at).label("at"))
                 .where(history.c.entity == entity.key, history.c.to_stage.in_(closing))
                 .group_by(history.c.record_id).subquery())
        return moves, func.coalesce(moves.c.at, table.c.created_at)

    def closed_ids(self, actor: Actor, entity_key: str, since: dt.datetime | None,
                   until: dt.datetime | None, *, pipeline: str | None = None) -> list[int]:
        """The records won or lost in ``[since, until)``: those a won/lost column counts."""
        entity, workflow, table = self._setup(actor, entity_key)
        moves, entered = self._closing(entity, workflow, table)
        query = (select(table.c.id, table.c[workflow.field].label("stage"),
                        self._column(table, workflow.pipeline_field).label("pipeline")
                        if workflow.pipeline_field else null().label("pipeline"))
                 .select_from(table.outerjoin(moves, moves.c.record_id == table.c.id))
                 .where(*self._where(actor, entity, workflow, table, pipeline),
                        self._stage_filter(workflow, table, lambda stage: stage.is_closed),
                        *([entered >= since] if since is not None else []),
                        *([entered < until] if until is not None else [])))
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
        return sorted(r["id"] for r in rows
                      if self._stage_of(workflow, r).category in ("won", "lost"))

    def _closed(self, actor: Actor, entity_key: str, pipeline: str | None,
                periods: Sequence[tuple[dt.datetime | None, dt.datetime | None]],
                reason: str | None = None) -> list[tuple[int, Stage, Any, int, Decimal]]:
        """Closed records per period, closing stage and (optionally) ``reason`` field:
        ``(period index, stage, reason, count, value)``.

        A record closed when it last changed stage (its creation when it never
        did); periods are ``[since, until)``, either end open when None.
        """
        entity, workflow, table = self._setup(actor, entity_key)
        moves, entered = self._closing(entity, workflow, table)
        choices = []
        for index, (since, until) in enumerate(periods):
            bounds = [*([entered >= since] if since is not None else []),
                      *([entered < until] if until is not None else [])]
            choices.append((and_(*bounds) if bounds else true(), index))
        named = {"period": case(*choices, else_=None),
                 "reason": self._column(table, reason)}
        found = self._grouped(
            actor, entity, workflow, table, pipeline, named,
            where=[self._stage_filter(workflow, table, lambda stage: stage.is_closed),
                   or_(*(condition for condition, _ in choices))],
            value=self._column(table, workflow.figures.value),
            source=table.outerjoin(moves, moves.c.record_id == table.c.id))
        closed = []
        for row in found:
            stage = self._stage_of(workflow, row)
            if stage.is_closed and row["period"] is not None:
                closed.append((int(row["period"]), stage, row["reason"], row["count"],
                               Decimal(row["value"] or 0)))
        return closed

    def win_rate(self, actor: Actor, entity_key: str, *, pipeline: str | None = None,
                 since: dt.datetime | None = None, until: dt.datetime | None = None) -> WinRate:
        """Won ÷ (won + lost), by count and by value, of records closed in [since, until)."""
        return self.win_rates(actor, entity_key, [(since, until)], pipeline=pipeline)[0]

    def win_rates(self, actor: Actor, entity_key: str,
                  periods: Sequence[tuple[dt.datetime | None, dt.datetime | None]], *,
                  pipeline: str | None = None) -> list[WinRate]:
        """``win_rate`` for each ``(since, until)`` period, in one query (a dashboard's months)."""
        self._require(actor, entity_key, self._setup(actor, entity_key)[1].figures.value)
        totals = [[0, 0, Decimal(0), Decimal(0)] for _ in periods]
        for index, stage, _, count, value in self._closed(actor, entity_key, pipeline, periods):
            side = 0 if stage.category == "won" else 1 if stage.category == "lost" else None
            if side is not None:
                totals[index][side] += count
                totals[index][2 + side] += value
        return [WinRate(won, lost, _rate(won, won + lost), won_value, lost_value,
                        _rate(won_value, won_value + lost_value))
                for won, lost, won_value, lost_value in totals]

    def lost_reasons(self, actor: Actor, entity_key: str, *, pipeline: str | None = None,
                     since: dt.datetime | None = None, until: dt.datetime | None = None
                     ) -> list[LostReason]:
        """Lost records by reason (``figures.lost_reason``), the most frequent first."""
        entity, workflow, _ = self._setup(actor, entity_key)
        name = workflow.figures.lost_reason
        self._require(actor, entity_key, name, workflow.figures.value)
        if name is None:
            raise ValidationFailed({"lost_reason": [
                f"The workflow of {entity.key} names no figures.lost_reason field."]})
        field = entity.fields[name]
        counts: dict[Any, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
        for _, stage, reason, count, value in self._closed(actor, entity_key, pipeline,
                                                            [(since, until)], name):
            if stage.category == "lost":
                counts[reason][0] += count
                counts[reason][1] += value
        total = sum(c for c, _ in counts.values())
        language = actor.language
        result = [
            LostReason(key, field.choices[key].get(language) if key in field.choices
                       else ("—" if key is None else str(key)), count, value,
                       _rate(count, total) or Decimal(0))
            for key, (count, value) in counts.items()
        ]
        result.sort(key=lambda r: (-r.count, -r.value, str(r.reason)))
        return result
