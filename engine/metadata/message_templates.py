"""Message templates: Jinja2 in a sandbox, one text per language.

Reminder texts are written by consultants and filled with record values
typed by users, so they run in Jinja2's :class:`SandboxedEnvironment`
(no attribute access to Python internals, no imports) with autoescaping
off — messages are plain text for e-mail bodies, SMS and the inbox, which
escapes on display.  Templates are compiled once, when the definitions
load, so a syntax error is reported with the file and line of the rule.

It lives with the definitions because the reminder rules check their templates
when they load (engine.metadata.reminder_rules); the notifications that render
the texts later sit above the services and import it from here.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

#: The languages every message is rendered in.
LANGUAGES: tuple[str, ...] = ("en", "zh")
#: Names a template may use besides ``record``.
CONTEXT_NAMES: frozenset[str] = frozenset({"record", "display", "rule", "entity", "due",
                                           "language", "recipient"})


@functools.cache
def environment() -> SandboxedEnvironment:
    """The one sandbox (immutable after creation, so sharing it is safe)."""
    return SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


class TemplateProblem(ValueError):
    """A template that does not compile, or names something that does not exist."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def check_template(source: str, fields: Iterable[str]) -> None:
    """Compile ``source`` and check the names it uses; raises :class:`TemplateProblem`."""
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"the template does not parse: {exc.message}", exc.lineno) from exc
    known = set(fields)
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in CONTEXT_NAMES | assigned and \
                name.name not in env.globals:
            raise TemplateProblem(
                f"the template names '{name.name}', which it does not know; use "
                f"{{{{ record.<field> }}}}, display, rule, entity, due or language", name.lineno)
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in ("record", "display") \
                and node.attr not in known:
            near = difflib.get_close_matches(node.attr, sorted(known), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise TemplateProblem(f"the template names an unknown field "
                                  f"'{node.node.name}.{node.attr}'{hint}", node.lineno)


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Render one template in the sandbox; whitespace at both ends is dropped."""
    return environment().from_string(source).render(**context).strip()


def render_languages(texts: Mapping[str, str], contexts: Mapping[str, Mapping[str, Any]]
                     ) -> dict[str, str]:
    """Each language's text rendered with that language's context (``zh`` falls back to ``en``)."""
    return {lang: render_text(texts.get(lang) or texts["en"], contexts[lang]) for lang in LANGUAGES}
