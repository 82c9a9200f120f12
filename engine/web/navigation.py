"""The menu: the site's packs and, under each, the entities the actor may read.

The policy is asked for every entity on every page, so a role change shows
at the next request.  Hiding an entry is a courtesy: the pages behind it
ask the record service, which refuses on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.context import Actor
from engine.site import Site


@dataclass(frozen=True)
class NavEntry:
    entity: str
    label: str
    icon: str | None


@dataclass(frozen=True)
class NavGroup:
    pack: str
    label: str
    entries: tuple[NavEntry, ...]


def navigation(site: Site, actor: Actor, language: str) -> list[NavGroup]:
    groups = []
    for pack in site.registry.packs.values():
        entries = tuple(
            NavEntry(e.key, e.plural.get(language), e.icon)
            for e in site.registry.entities.values()
            if e.pack == pack.name and site.records.policy.can(actor, e, "read")
        )
        if entries:
            groups.append(NavGroup(pack.name, pack.label.get(language), entries))
    return groups
