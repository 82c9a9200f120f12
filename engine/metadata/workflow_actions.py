"""Reading and checking the actions of a workflow: set, create, follow_up, notify, hook.

Actions run inside a transition's transaction, so a mistake in one would
make every such transition fail at the worst moment (a deal being won).
`crm check` therefore checks each one against the entities it touches:
fields that exist and can be written, expressions that name real fields,
references that point the right way, required fields of created records
that nothing fills, and hook functions that exist — resolved to their file
here, without running any pack code (``hooks.py`` is parsed, not imported;
engine/metadata/pack_python.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.expressions import Expression, ExpressionError, compile_expression
from engine.i18n import message as engine_message
from engine.metadata.durations import parse_duration
from engine.metadata.merge import SITE
from engine.metadata.model import SYSTEM_COLUMNS, Entity, Label, PackInfo
from engine.metadata.pack_python import HOOKS_FILE, FunctionFinder, did_you_mean
from engine.metadata.values import ValueProblem, coerce
from engine.metadata.workflow_model import (
    RECIPIENTS,
    Action,
    CreateAction,
    HookAction,
    NotifyAction,
    SetAction,
)
from engine.metadata.yaml_source import SourceDocument

#: The keys an action item may have; exactly one per item.
ACTION_KEYS: tuple[str, ...] = ("set", "set_expression", "create", "follow_up", "notify", "hook")
DEFAULT_DUE_FIELD = "due_at"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ActionReader:
    """Builds the actions of one workflow document, reporting problems as it goes."""

    def __init__(
        self,
        doc: SourceDocument,
        pack: str,
        entity: Entity,
        entities: Mapping[str, Entity],
        packs: Mapping[str, PackInfo],
        managed: tuple[str, ...],
        problems: list[Problem],
        finder: FunctionFinder,
        overlay_dir: Path | None = None,
    ) -> None:
        self.doc = doc
        self.pack = pack
        self.entity = entity
        self.entities = entities
        self.packs = packs
        self.managed = managed
        self.problems = problems
        self.finder = finder
        self.overlay_dir = overlay_dir
        self.known = [*entity.fields, *SYSTEM_COLUMNS]

    def report(self, path: Sequence, message: str, *, key: bool = False,
               severity: str = "error") -> None:
        self.problems.append(self.doc.problem(path, message, key=key, severity=severity))

    def expression(self, text: Any, path: tuple, what: str,
                   extra: Sequence[str] = ()) -> Expression | None:
        """Compile an expression over the flow's record (and ``extra`` names); report problems."""
        try:
            expr = compile_expression(str(text))
        except ExpressionError as exc:
            column = f" at column {exc.column}" if exc.column else ""
            self.report(path, f"the {what} does not parse{column}: {exc.message}")
            return None
        for text_problem in expr.check_names([*self.known, *extra]):
            self.report(path, f"the {what} {text_problem}")
        return expr

    def field_of_flow(self, name: str, path: tuple, what: str) -> bool:
        """Whether ``name`` is a field of the flow's entity that may be written."""
        field = self.entity.fields.get(name)
        if field is None:
            self.report(path, f"{what} names an unknown field '{name}' of "
                        f"{self.entity.key}{did_you_mean(name, list(self.entity.fields))}", key=True)
            return False
        if name in self.managed:
            self.report(path, f"'{name}' is the workflow's own field: only transitions "
                        "change it", key=True)
            return False
        if not field.is_input or field.type in ("lines", "many_to_many"):
            self.report(path, f"'{name}' is a {field.type} field and cannot be set by an "
                        "action", key=True)
            return False
        return True

    # -- the list ----------------------------------------------------------

    def actions(self, items: Any, path: tuple) -> tuple[Action, ...]:
        built: list[Action] = []
        for index, item in enumerate(items or ()):
            where = (*path, index)
            if not isinstance(item, dict) or not item:
                continue  # the schema check has reported it
            keys = [k for k in item if k in ACTION_KEYS]
            if len(keys) > 1:
                self.report((*where, keys[1]), f"one action per list item: '{keys[0]}' and "
                            f"'{keys[1]}' are two actions — write each as its own '- ...' item",
                            key=True)
                continue
            kind = keys[0]
            action = getattr(self, f"_{kind}")(item[kind], (*where, kind))
            if action is not None:
                built.append(action)
        return tuple(built)

    # -- each kind -----------------------------------------------------------

    def _set(self, values: dict[str, Any], path: tuple) -> SetAction | None:
        ok = True
        for name, value in values.items():
            if not self.field_of_flow(name, (*path, name), "'set'"):
                ok = False
                continue
            try:
                coerce(self.entity.fields[name], value)
            except ValueProblem as problem:
                self.report((*path, name), "the value does not fit the field: "
                            + engine_message(problem.key, "en", **problem.params))
                ok = False
        return SetAction(values=dict(values)) if ok else None

    def _set_expression(self, values: dict[str, Any], path: tuple) -> SetAction | None:
        expressions: dict[str, Expression] = {}
        ok = True
        for name, text in values.items():
            if not self.field_of_flow(name, (*path, name), "'set_expression'"):
                ok = False
                continue
            expr = self.expression(text, (*path, name), "expression")
            if expr is None:
                ok = False
            else:
                expressions[name] = expr
        return SetAction(expressions=expressions) if ok else None

    def _target(self, name: str, path: tuple) -> Entity | None:
        target = self.entities.get(name)
        if target is None:
            self.report(path, f"there is no entity '{name}'{did_you_mean(name, list(self.entities))}")
        return target

    def _create(self, data: dict[str, Any], path: tuple, *, follow_up: bool = False
                ) -> CreateAction | None:
        target = self._target(data["entity"], (*path, "entity"))
        if target is None:
            return None
        ok = True
        unknown = False
        values: dict[str, Expression] = {}
        for name, text in (data.get("values") or {}).items():
            where = (*path, "values", name)
            field = target.fields.get(name)
            if field is None:
                self.report(where, f"'{name}' is not a field of {target.key}"
                            f"{did_you_mean(name, list(target.fields))}", key=True)
                ok = False
                unknown = True
                continue
            if not field.is_input:
                self.report(where, f"'{name}' is a {field.type} field of {target.key}; the "
                            "engine fills it", key=True)
                ok = False
                continue
            expr = self.expression(text, where, "mapping")
            if expr is None:
                ok = False
            else:
                values[name] = expr
        link = data.get("link")
        if link is not None and not self._reference(target, link, self.entity.key,
                                                    (*path, "link")):
            ok = False
        store_in = data.get("store_in")
        if store_in is not None and not self._reference(self.entity, store_in, target.key,
                                                        (*path, "store_in")):
            ok = False
        due_field = None
        due_in = None
        if follow_up:
            due_in = parse_duration(data["due_in"])
            due_field = data.get("due_field", DEFAULT_DUE_FIELD)
            found = target.fields.get(due_field)
            if found is None or found.value_type not in ("date", "datetime"):
                what = "has no such field" if found is None else f"has it as a {found.type} field"
                self.report((*path, "due_field") if "due_field" in data else path,
                            f"the follow-up's due time goes into '{due_field}', but "
                            f"{target.key} {what}; name a date or datetime field with "
                            f"'due_field'{did_you_mean(due_field, list(target.fields))}",
                            key="due_field" not in data)
                ok = False
        filled = {*values, link, due_field}
        for field in [] if unknown else target.fields.values():  # a misspelling is reason enough
            if (field.required and field.is_input and field.key not in filled
                    and field.default is None and field.default_expression is None):
                self.report((*path, "values") if "values" in data else path,
                            f"the new {target.key} needs '{field.key}' (a required field "
                            "without a default): map it in 'values'", key=True)
                ok = False
        if not ok:
            return None
        return CreateAction(entity=target.key, values=values, link=link, store_in=store_in,
                            owner=data.get("owner", "owner"), due_in=due_in,
                            due_field=due_field)

    def _follow_up(self, data: dict[str, Any], path: tuple) -> CreateAction | None:
        return self._create(data, path, follow_up=True)

    def _reference(self, owner: Entity, name: str, to: str, path: tuple) -> bool:
        field = owner.fields.get(name)
        if field is None:
            self.report(path, f"'{name}' is not a field of {owner.key}"
                        f"{did_you_mean(name, list(owner.fields))}")
            return False
        if field.type != "reference" or field.to != to:
            self.report(path, f"'{name}' must be a reference to {to}; it is a {field.type} "
                        f"field{f' to {field.to}' if field.to else ''}")
            return False
        return True

    def _notify(self, data: dict[str, Any], path: tuple) -> NotifyAction | None:
        ok = True
        for index, recipient in enumerate(data["to"]):
            if recipient in RECIPIENTS or re.fullmatch(r"role:[a-z][a-z0-9_]*", recipient):
                continue
            choices = [*RECIPIENTS, "role:<key>"]
            self.report((*path, "to", index), f"'{recipient}' is not someone to notify; "
                        f"write one of: {', '.join(choices)}{did_you_mean(recipient, RECIPIENTS)}")
            ok = False
        texts = [("message", data["message"])]
        if data.get("subject") is not None:
            texts.append(("subject", data["subject"]))
        for key, value in texts:
            words = value.values() if isinstance(value, dict) else [value]
            for name in {n for text in words for n in _PLACEHOLDER.findall(str(text))}:
                if name not in self.known:
                    self.report((*path, key), f"the {key} names an unknown field "
                                f"'{{{name}}}'{did_you_mean(name, self.known)}")
                    ok = False
        if not ok:
            return None
        return NotifyAction(
            to=tuple(data["to"]), message=Label.from_yaml(data["message"]),
            subject=Label.from_yaml(data["subject"]) if data.get("subject") else None,
            channels=tuple(data.get("channels") or ("in_app",)),
            origin_document=self.doc, origin_path=path,
        )

    def _hook(self, name: str, path: tuple) -> HookAction | None:
        """The action, its function resolved to the file that defines it (the site's
        ``custom/hooks.py`` for a workflow the site writes)."""
        if self.pack == SITE:
            folder, shown = self.overlay_dir, f"custom/{HOOKS_FILE}"
        else:
            info = self.packs.get(self.pack)
            folder, shown = (Path(info.path) if info else None), f"packs/{self.pack}/{HOOKS_FILE}"
        file, problem = self.finder.find(folder / HOOKS_FILE if folder else None, shown, name,
                                         missing_file=f"write 'def {name}(context): ...' in it")
        if problem is not None:
            self.report(path, problem)
            return None
        return HookAction(function=name, pack=self.pack, file=str(file))
