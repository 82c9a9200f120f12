"""The list page's "a row per line" export links (a template helper of the list page).

The downloads themselves are streamed by engine.http.downloads, which the API
uses too; which links a list page shows is the web pages' own business, so it
lives here.
"""

from __future__ import annotations

from typing import Any

from engine.http.context import actor, language, site
from engine.services.dataio.importing.messages import say
from engine.web.records.pages import bp


def lines_exports(entity: Any) -> list[tuple[str, str]]:
    """The lines fields a list page offers to export a row per line of: (key, the link's
    words), those the actor sees, when they may export at all."""
    me = actor()
    records = site().records
    if me is None or not records.policy.can(me, entity, "export"):
        return []
    hidden = records.hidden(me, entity)
    lang = language()
    return [(f.key, say("export_lines", lang, lines=f.label.get(lang)))
            for f in entity.fields.values() if f.type == "lines" and f.key not in hidden]


@bp.app_context_processor
def _download_helpers() -> dict[str, Any]:
    return {"lines_exports": lines_exports}
