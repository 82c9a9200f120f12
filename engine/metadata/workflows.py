"""Stage flows declared in YAML (``workflow:`` documents): reading and checking them.

A workflow names its entity and the field that holds the stage.  That field
is *created by the workflow* (a choice of the stage keys, labelled with the
stage labels): the stages are written once, in the workflow, and the
entity's other definitions (indexes, conditions such as
``visible_if: "stage == 'lost'"``) may still name the field.  To make that
possible the loader calls :func:`add_workflow_fields` on the merged raw
entities *before* they are built, and :func:`build_workflows` after.

Checks, each reported at its file and line with a did-you-mean for near
misses: unknown entities, fields and stages; stages no transition reaches
(or that cannot be reached from the initial stage); open stages with no way
out; guards and mappings naming unknown fields; duplicate transitions,
orders and workflows; actions that could never run.  Roles named by
transitions are checked later by the roles loader (see
:meth:`Workflow.role_references`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import Problem
from engine.expressions.actor import ACTOR_NAMES
from engine.metadata.durations import BusinessHours, Sla, parse_clock_time, parse_duration, zone
from engine.metadata.merge import SITE, Located, RawEntity, RawField
from engine.metadata.model import Entity, Label, Origin, PackInfo
from engine.metadata.pack_python import FunctionFinder
from engine.metadata.packs import depends_on
from engine.metadata.workflow_actions import ActionReader, did_you_mean
from engine.metadata.workflow_extension import EXTENSION_KIND, apply_extensions
from engine.metadata.workflow_model import (
    ActivityLink,
    Figures,
    Pipeline,
    Stage,
    Transition,
    Workflow,
)
from engine.metadata.yaml_source import SourceDocument

#: Document kinds this module builds from.
WORKFLOW_KINDS: tuple[str, ...] = ("workflow", EXTENSION_KIND)
DEFAULT_FIELD = "stage"
DEFAULT_PIPELINE_FIELD = "pipeline"
#: The key of the one pipeline of a workflow written without ``pipelines:``.
SINGLE_PIPELINE = "default"
DEFAULT_FIELD_LABEL = {"en": "Stage", "zh": "阶段"}
DEFAULT_PIPELINE_LABEL = {"en": "Pipeline", "zh": "流程"}
_PROBABILITY_OF = {"won": 100, "lost": 0}


@dataclass
class _Declared:
    """One workflow document that takes effect (after overrides)."""

    pack: str
    doc: SourceDocument

    @property
    def data(self) -> dict[str, Any]:
        return self.doc.data

    @property
    def key(self) -> str:
        return self.data["workflow"]

    @property
    def stage_field(self) -> str:
        return self.data.get("field", DEFAULT_FIELD)

    def pipelines(self) -> list[tuple[str, dict[str, Any], tuple]]:
        """(key, data, path) of each pipeline; a flow without ``pipelines:`` has one."""
        if "pipelines" in self.data:
            return [(k, v, ("pipelines", k)) for k, v in (self.data["pipelines"] or {}).items()
                    if isinstance(v, dict)]
        if "stages" not in self.data:
            return []
        single = {k: self.data[k] for k in ("stages", "transitions") if k in self.data}
        return [(SINGLE_PIPELINE, single, ())]

    def where(self, *path: Any) -> Located:
        return Located(self.doc, path)


def _effective(
    documents: list[tuple[str, SourceDocument, str]], packs: Mapping[str, PackInfo]
) -> tuple[list[_Declared], list[Problem]]:
    """The workflow documents that count, in loading order; a later ``override: true`` wins."""
    problems: list[Problem] = []
    by_key: dict[str, _Declared] = {}
    extensions: list[tuple[str, SourceDocument]] = []
    for pack, doc, kind in documents:
        if kind == EXTENSION_KIND:
            extensions.append((pack, doc))
            continue
        if kind not in WORKFLOW_KINDS:
            continue
        declared = _Declared(pack, doc)
        key = declared.key
        earlier = by_key.get(key)
        wants = bool(doc.data.get("override"))
        if earlier is None:
            if wants:
                problems.append(doc.problem(
                    ("override",), f"there is no workflow '{key}' to override"
                    f"{did_you_mean(key, list(by_key))}; remove 'override: true' to define it"))
            by_key[key] = declared
            continue
        line = earlier.doc.locate(("workflow",))[0]
        if not wants:
            problems.append(doc.problem(
                ("workflow",), f"workflow '{key}' is already defined in {earlier.doc.file} "
                f"(line {line}); to replace it, add 'override: true' (or choose another key)"))
            continue
        if pack != SITE and pack != earlier.pack and not depends_on(dict(packs), pack,
                                                                      earlier.pack):
            problems.append(doc.problem(
                ("override",), f"pack '{pack}' overrides workflow '{key}' of pack "
                f"'{earlier.pack}' without depending on it: add '{earlier.pack}' to 'depends' "
                "in pack.yaml"))
            continue
        by_key[key] = declared
    extended, found = apply_extensions(
        {k: (d.pack, d.doc) for k, d in by_key.items()}, extensions, packs)
    problems.extend(found)
    for key, doc in extended.items():
        by_key[key] = _Declared(by_key[key].pack, doc)
    return list(by_key.values()), problems


def _label_data(value: Any, key: str) -> Any:
    return value if value else Label.from_key(key).en


# -- before the entities are built: the fields a workflow owns ---------------------------


def add_workflow_fields(
    raw_entities: dict[str, RawEntity],
    documents: list[tuple[str, SourceDocument, str]],
    packs: Mapping[str, PackInfo],
) -> list[Problem]:
    """Give each flow's entity its stage field (and pipeline field); report clashes.

    Runs on the merged raw entities so that the rest of the entity (its
    indexes, conditions, computed fields) may name these fields, and so
    that they are built and checked like any other field.
    """
    problems: list[Problem] = []
    declared, _ = _effective(documents, packs)
    seen: set[str] = set()
    for decl in declared:
        raw = raw_entities.get(decl.data["entity"])
        pipelines = decl.pipelines()
        if raw is None or not pipelines or raw.key in seen:
            continue  # reported by build_workflows
        seen.add(raw.key)
        fields = [(decl.stage_field, "field", _stage_field(decl, pipelines))]
        if len(pipelines) > 1:
            name = decl.data.get("pipeline_field", DEFAULT_PIPELINE_FIELD)
            fields.append((name, "pipeline_field", _pipeline_field(decl, pipelines)))
        for name, option, data in fields:
            where = decl.where(option) if option in decl.data else decl.where("workflow")
            existing = raw.fields.get(name)
            if existing is not None:
                place = existing.declared.document
                line = place.locate(existing.declared.path)[0]
                what = "stage" if option == "field" else "pipeline"
                problems.append(where.problem(
                    f"entity '{raw.key}' already declares a field '{name}' ({place.file}, "
                    f"line {line}); the workflow creates its {what} field from its "
                    f"{what}s, so remove that field from the entity (or name another "
                    f"field with '{option}:')", key=option not in decl.data))
                continue
            field_ = RawField(key=name, data=data, declared=where)
            field_.options = {option_: where for option_ in data}
            raw.fields[name] = field_
    return problems


def _stage_field(decl: _Declared, pipelines: list[tuple[str, dict, tuple]]) -> dict[str, Any]:
    choices: dict[str, Any] = {}
    for _, spec, _ in pipelines:
        for key, stage in (spec.get("stages") or {}).items():
            if key not in choices:
                choices[key] = _label_data(stage.get("label") if isinstance(stage, dict)
                                           else None, key)
    data: dict[str, Any] = {"type": "choice", "index": True, "choices": choices,
                            "label": decl.data.get("field_label", DEFAULT_FIELD_LABEL)}
    first = pipelines[0][1].get("stages") or {}
    initial = [k for k, s in first.items() if isinstance(s, dict) and s.get("initial")]
    if first:
        data["default"] = initial[0] if initial else min(
            first, key=lambda k: _order_of(first, k))
    return data


def _order_of(stages: dict[str, Any], key: str) -> tuple[int, int]:
    index = list(stages).index(key)
    spec = stages[key] if isinstance(stages[key], dict) else {}
    order = spec.get("order")
    return (order if isinstance(order, int) else (index + 1) * 10, index)


def _pipeline_field(decl: _Declared, pipelines: list[tuple[str, dict, tuple]]) -> dict[str, Any]:
    choices = {key: _label_data(spec.get("label"), key) for key, spec, _ in pipelines}
    defaults = [key for key, spec, _ in pipelines if spec.get("default")]
    return {
        "type": "choice", "index": True, "choices": choices,
        "default": defaults[0] if defaults else pipelines[0][0],
        "label": decl.data.get("pipeline_field_label", DEFAULT_PIPELINE_LABEL),
    }


# -- after the entities are built: the workflows ----------------------------------------


class _Builder:
    """Builds one workflow document against the built entities, collecting problems."""

    def __init__(
        self, decl: _Declared, entity: Entity, entities: Mapping[str, Entity],
        packs: Mapping[str, PackInfo], finder: FunctionFinder, overlay_dir: Path | None,
    ) -> None:
        self.decl = decl
        self.doc = decl.doc
        self.entity = entity
        self.entities = entities
        self.problems: list[Problem] = []
        self.pipeline_field: str | None = None
        if len(decl.pipelines()) > 1:
            self.pipeline_field = decl.data.get("pipeline_field", DEFAULT_PIPELINE_FIELD)
        managed = (decl.stage_field,) if self.pipeline_field is None else (decl.stage_field,
                                                                      self.pipeline_field)
        self.managed = managed
        self.actions = ActionReader(decl.doc, decl.pack, entity, entities, packs, managed,
                                    self.problems, finder, overlay_dir)
        self.business_hours: BusinessHours | None = None

    def report(self, path: Any, message: str, *, key: bool = False,
               severity: str = "error") -> None:
        self.problems.append(self.doc.problem(path, message, key=key, severity=severity))

    # -- fields of the flow's entity -------------------------------------------

    def known_field(self, name: str, path: tuple, what: str, *, key: bool = False) -> bool:
        if name in self.entity.fields:
            return True
        self.report(path, f"{what} names an unknown field '{name}' of {self.entity.key}"
                    f"{did_you_mean(name, list(self.entity.fields))}", key=key)
        return False

    def field_list(self, names: Any, path: tuple, what: str) -> tuple[str, ...]:
        good = []
        for index, name in enumerate(names or ()):
            where = (*path, index)
            if not self.known_field(name, where, what):
                continue
            if name in self.managed:
                self.report(where, f"'{name}' is the workflow's own field; it cannot be "
                            f"listed in {what}")
                continue
            good.append(name)
        return tuple(good)

    def typed_field(self, option: str, types: tuple[str, ...], words: str) -> str | None:
        source = self.decl.data.get("figures") or {}
        container: tuple = ("figures",)
        if option == "probability_field":
            source, container = self.decl.data, ()
        name = source.get(option)
        if name is None:
            return None
        where = (*container, option)
        if not self.known_field(name, where, f"'{option}'"):
            return None
        found = self.entity.fields[name]
        if found.value_type not in types:
            self.report(where, f"'{name}' is a {found.value_type} field; '{option}' needs "
                        f"{words}")
            return None
        if option == "probability_field" and not found.is_input:
            self.report(where, f"'{name}' is a {found.type} field; the workflow could not "
                        "set it")
            return None
        return name

    # -- the document ------------------------------------------------------------

    def build(self) -> Workflow | None:
        data = self.decl.data
        if "pipelines" in data:
            for option in ("stages", "transitions"):
                if option in data:
                    self.report((option,), f"'{option}:' belongs inside each pipeline when "
                                "the workflow has 'pipelines:'", key=True)
        elif "stages" not in data:
            self.report(("workflow",), "a workflow needs 'stages:' (or 'pipelines:', each "
                        "with its own stages)", key=True)
            return None
        if "pipeline_field" in data and self.pipeline_field is None:
            self.report(("pipeline_field",), "'pipeline_field' has no effect: the workflow "
                        "has one pipeline", key=True, severity="warning")
        self.business_hours = self.read_business_hours()
        pipelines: dict[str, Pipeline] = {}
        defaults: list[str] = []
        for key, spec, path in self.decl.pipelines():
            built = self.pipeline(key, spec, path)
            if spec.get("default"):
                defaults.append(key)
                if len(defaults) > 1:
                    self.report((*path, "default"), f"pipelines '{defaults[0]}' and '{key}' are "
                                "both marked default; only one can be", key=True)
            if built is not None:
                pipelines[key] = built
        figures = Figures(
            value=self.typed_field("value", ("integer", "decimal"), "a number field"),
            close_date=self.typed_field("close_date", ("date", "datetime"),
                                        "a date or datetime field"),
            lost_reason=self.lost_reason(),
            activity=self.activity_links(),
        )
        probability = self.typed_field("probability_field", ("integer", "decimal"),
                                       "a number field")
        if not pipelines or len(pipelines) != len(self.decl.pipelines()):
            return None
        label = Label.from_yaml(data.get("label"), Label.from_key(self.decl.key).en)
        line, column = self.doc.locate(("workflow",))
        return Workflow(
            key=self.decl.key,
            entity=self.entity.key,
            label=label,
            field=self.decl.stage_field,
            pipelines=MappingProxyType(pipelines),
            default_pipeline=defaults[0] if defaults else next(iter(pipelines)),
            pack=self.decl.pack,
            pipeline_field=self.pipeline_field,
            probability_field=probability,
            figures=figures,
            business_hours=self.business_hours,
            description=Label.from_yaml(data["description"]) if data.get("description")
            else None,
            origin=Origin(self.doc.file, line, column, self.decl.pack),
        )

    def lost_reason(self) -> str | None:
        name = (self.decl.data.get("figures") or {}).get("lost_reason")
        if name is None:
            return None
        return name if self.known_field(name, ("figures", "lost_reason"), "'lost_reason'") \
            else None

    def activity_links(self) -> tuple[ActivityLink, ...]:
        links = []
        for index, spec in enumerate((self.decl.data.get("figures") or {}).get("activity") or ()):
            where = ("figures", "activity", index)
            target = self.entities.get(spec["entity"])
            if target is None:
                self.report((*where, "entity"), f"there is no entity '{spec['entity']}'"
                            f"{did_you_mean(spec['entity'], list(self.entities))}")
                continue
            found = target.fields.get(spec["field"])
            if found is None or found.type != "reference" or found.to != self.entity.key:
                what = "has no such field" if found is None else f"has it as a {found.type} field"
                self.report((*where, "field"), f"'{spec['field']}' must be a reference from "
                            f"{target.key} to {self.entity.key}; {target.key} {what}"
                            f"{did_you_mean(spec['field'], list(target.fields))}")
                continue
            links.append(ActivityLink(target.key, found.key))
        return tuple(links)

    def read_business_hours(self) -> BusinessHours | None:
        spec = self.decl.data.get("business_hours")
        if spec is None:
            return None
        hours = BusinessHours()
        try:
            zone(spec.get("timezone", hours.timezone))
        except ValueError:
            self.report(("business_hours", "timezone"), f"unknown time zone "
                        f"'{spec['timezone']}'; write an IANA name such as Asia/Shanghai")
            return None
        start = parse_clock_time(spec.get("start", "09:00"))
        end = parse_clock_time(spec.get("end", "18:00"))
        if start >= end:
            self.report(("business_hours", "end"), "the working day must end after it starts")
            return None
        return BusinessHours(
            timezone=spec.get("timezone", hours.timezone),
            days=tuple(spec.get("days", hours.days)),
            start=start,
            end=end,
        )

    # -- pipelines, stages, transitions ----------------------------------------------

    def pipeline(self, key: str, spec: dict[str, Any], path: tuple) -> Pipeline | None:
        stages = self.stages(spec.get("stages") or {}, (*path, "stages"))
        if not stages:
            return None
        initial = self.initial(stages, spec.get("stages") or {}, (*path, "stages"))
        specs = spec.get("transitions") or {}
        transitions = self.transitions(key, stages, specs, (*path, "transitions"))
        if len(transitions) == len(specs) and not stages[initial].is_closed:
            # With a transition or the initial stage wrong, the graph would only add noise.
            self.check_graph(stages, transitions, initial, path)
        label = spec.get("label") or (self.decl.data.get("label") if not path else None)
        return Pipeline(
            key=key,
            label=Label.from_yaml(label, Label.from_key(key).en),
            stages=MappingProxyType(stages),
            transitions=MappingProxyType(transitions),
            initial=initial,
        )

    def stages(self, specs: dict[str, Any], path: tuple) -> dict[str, Stage]:
        built: list[tuple[tuple[int, int], Stage]] = []
        orders: dict[int, str] = {}
        for index, (key, spec) in enumerate(specs.items()):
            where = (*path, key)
            order, _ = _order_of(specs, key)
            if "order" in spec:
                if order in orders:
                    self.report((*where, "order"), f"stages '{orders[order]}' and '{key}' have "
                                f"the same order {order}; give each its own place")
                orders[order] = key
            stage = self.stage(key, spec, where, order)
            if stage is not None:
                built.append(((order, index), stage))
        return {s.key: s for _, s in sorted(built, key=lambda item: item[0])}

    def stage(self, key: str, spec: dict[str, Any], where: tuple, order: int) -> Stage | None:
        category = spec.get("category", "open")
        probability = spec.get("probability")
        if category in _PROBABILITY_OF:
            certain = _PROBABILITY_OF[category]
            if probability is not None and probability != certain:
                self.report((*where, "probability"), f"a {category} stage counts at "
                            f"{certain}%: write probability: {certain} or leave it out")
            probability = certain
            for option in ("sla", "stale_after"):
                if option in spec:
                    self.report((*where, option), f"'{option}' has no effect on a {category} "
                                "stage: closed records are never overdue or stale",
                                key=True, severity="warning")
        return Stage(
            key=key,
            label=Label.from_yaml(spec.get("label"), Label.from_key(key).en),
            order=order,
            category=category,
            probability=probability,
            colour=spec.get("colour"),
            description=Label.from_yaml(spec["description"]) if spec.get("description")
            else None,
            sla=self.sla(spec.get("sla"), (*where, "sla")),
            stale_after=parse_duration(spec["stale_after"]) if "stale_after" in spec else None,
            requires=self.field_list(spec.get("requires"), (*where, "requires"), "'requires'"),
            readonly=self.field_list(spec.get("readonly"), (*where, "readonly"), "'readonly'"),
            on_enter=self.actions.actions(spec.get("on_enter"), (*where, "on_enter")),
        )

    def sla(self, spec: Any, where: tuple) -> Sla | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            return Sla(within=parse_duration(spec), text=spec)
        text = spec["within"]
        business = bool(spec.get("business_hours"))
        if business:
            if self.decl.data.get("business_hours") is None:
                self.report((*where, "business_hours"), "the SLA counts business hours, but "
                            "the workflow declares no 'business_hours:' (days, start, end)")
                return None
            if any(unit in text for unit in "dw"):
                self.report((*where, "within"), f"'{text}': write business-hour SLAs in "
                            "hours (h) or minutes (m); a working day's length depends on "
                            "business_hours")
                return None
        return Sla(within=parse_duration(text), text=text, business_hours=business)

    def initial(self, stages: dict[str, Stage], specs: dict[str, Any], path: tuple) -> str:
        marked = [k for k, s in specs.items() if isinstance(s, dict) and s.get("initial")]
        for extra in marked[1:]:
            self.report((*path, extra, "initial"), f"stages '{marked[0]}' and '{extra}' are "
                        "both marked initial; new records start in one stage", key=True)
        initial = marked[0] if marked and marked[0] in stages else next(iter(stages))
        if stages[initial].is_closed:
            self.report((*path, initial), f"new records would start in '{initial}', a "
                        f"{stages[initial].category} stage; mark an open stage 'initial: "
                        "true' or put one first", key=True)
        return initial

    def transitions(
        self, pipeline: str, stages: dict[str, Stage], specs: dict[str, Any], path: tuple
    ) -> dict[str, Transition]:
        built: dict[str, Transition] = {}
        # A transition naming its stages takes precedence over one written from: "*",
        # so only two of the same kind leading the same way are ambiguous.
        pairs: dict[tuple[str, str, bool], str] = {}
        for key, spec in specs.items():
            transition = self.transition(pipeline, key, spec, stages, (*path, key))
            if transition is None:
                continue
            for source in transition.sources:
                pair = (source, transition.to, transition.from_any)
                earlier = pairs.get(pair)
                if earlier is not None:
                    self.report((*path, key), f"transitions '{earlier}' and '{key}' both lead "
                                f"from '{source}' to '{transition.to}'; merge them (list "
                                "several roles, combine the guards)", key=True)
                    break
                pairs[pair] = key
            built[key] = transition
        return built

    def stage_name(self, name: Any, stages: dict[str, Stage], where: tuple, what: str) -> bool:
        if name in stages:
            return True
        self.report(where, f"{what} names an unknown stage '{name}'"
                    f"{did_you_mean(name, list(stages))}; the stages are: {', '.join(stages)}")
        return False

    def transition(
        self, pipeline: str, key: str, spec: dict[str, Any], stages: dict[str, Stage],
        where: tuple,
    ) -> Transition | None:
        ok = self.stage_name(spec["to"], stages, (*where, "to"), "'to'")
        raw_from = spec["from"]
        from_any = raw_from == "*"
        names = [raw_from] if isinstance(raw_from, str) else list(raw_from)
        sources: list[str] = []
        if from_any:
            sources = [s for s, stage in stages.items() if not stage.is_closed and s != spec["to"]]
        else:
            for index, name in enumerate(names):
                at = (*where, "from") if isinstance(raw_from, str) else (*where, "from", index)
                if name == "*":
                    self.report(at, "write from: \"*\" on its own; it already means every "
                                "open stage")
                    ok = False
                elif not self.stage_name(name, stages, at, "'from'"):
                    ok = False
                elif name == spec["to"]:
                    self.report(at, f"a transition cannot lead from '{name}' to itself")
                    ok = False
                else:
                    sources.append(name)
        guard = None
        if "guard" in spec:
            guard = self.actions.expression(spec["guard"], (*where, "guard"), "guard",
                                            ACTOR_NAMES)
            ok = ok and guard is not None
        elif "guard_message" in spec:
            self.report((*where, "guard_message"), "'guard_message' is shown when the guard "
                        "fails, but this transition has no 'guard'", key=True)
        fields = self.field_list(spec.get("fields"), (*where, "fields"), "'fields'")
        reveals = tuple(name for index, name in enumerate(spec.get("reveals") or ())
                        if self.known_field(name, (*where, "reveals", index), "'reveals'"))
        actions = self.actions.actions(spec.get("actions"), (*where, "actions"))
        if not ok:
            return None
        target = stages[spec["to"]]
        return Transition(
            key=key,
            pipeline=pipeline,
            sources=tuple(sources),
            to=spec["to"],
            label=Label.from_yaml(spec.get("label")) if spec.get("label") else target.label,
            from_any=from_any,
            roles=tuple(spec.get("roles") or ()),
            guard=guard,
            guard_message=Label.from_yaml(spec["guard_message"]) if spec.get("guard_message")
            else None,
            fields=fields,
            confirm=Label.from_yaml(spec["confirm"]) if spec.get("confirm") else None,
            actions=actions,
            reveals=reveals,
            origin_document=self.doc,
            origin_path=where,
        )

    def check_graph(
        self, stages: dict[str, Stage], transitions: dict[str, Transition], initial: str,
        path: tuple,
    ) -> None:
        """Stages nobody can reach and open stages nobody can leave are mistakes."""
        incoming = {t.to for t in transitions.values()}
        reached = {initial}
        frontier = [initial]
        while frontier:
            stage = frontier.pop()
            for transition in transitions.values():
                if transition.leaves(stage) and transition.to not in reached:
                    reached.add(transition.to)
                    frontier.append(transition.to)
        for key, stage in stages.items():
            where = (*path, "stages", key)
            if key != initial and key not in incoming:
                self.report(where, f"no transition leads to stage '{key}': records could never "
                            f"get there; add a transition with 'to: {key}', or remove the "
                            "stage", key=True)
            elif key not in reached:
                self.report(where, f"stage '{key}' cannot be reached from the initial stage "
                            f"'{initial}': every transition into it starts from a stage that "
                            "is itself unreachable", key=True)
            if not stage.is_closed and not any(t.leaves(key) for t in transitions.values()):
                self.report(where, f"stage '{key}' is open but no transition leaves it: "
                            "records would be stuck there; add a transition from it, or make "
                            "it 'category: won' or 'category: lost'", key=True)


def build_workflows(
    documents: list[tuple[str, SourceDocument, str]],
    entities: dict[str, Entity],
    packs: Mapping[str, PackInfo],
    overlay_dir: Path | None = None,
) -> tuple[dict[str, Workflow], list[Problem]]:
    """Build and check every workflow document against the built entities (``hook:``
    actions of the site's own workflows resolve in ``overlay_dir``'s ``hooks.py``)."""
    declared, problems = _effective(documents, packs)
    workflows: dict[str, Workflow] = {}
    by_entity: dict[str, _Declared] = {}
    finder = FunctionFinder()
    for decl in declared:
        name = decl.data["entity"]
        entity = entities.get(name)
        if entity is None:
            problems.append(decl.where("entity").problem(
                f"there is no entity '{name}'{did_you_mean(name, list(entities))}"))
            continue
        if name in by_entity:
            first = by_entity[name]
            problems.append(decl.where("entity").problem(
                f"entity '{name}' already has workflow '{first.key}' ({first.doc.file}); an "
                "entity has one workflow — put several flows in its 'pipelines:'"))
            continue
        by_entity[name] = decl
        if not _owns_fields(decl, entity):
            continue  # the clash was reported by add_workflow_fields
        builder = _Builder(decl, entity, entities, packs, finder, overlay_dir)
        built = builder.build()
        problems.extend(builder.problems)
        if built is not None:
            workflows[built.key] = built
    return workflows, problems


def _owns_fields(decl: _Declared, entity: Entity) -> bool:
    """Whether the entity's stage field is the one this workflow created."""
    found = entity.fields.get(decl.stage_field)
    return found is not None and found.origin is not None and found.origin.file == decl.doc.file
