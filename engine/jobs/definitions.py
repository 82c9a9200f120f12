"""The scheduled jobs of a site: what its packs declare, as its crm.yaml re-times them.

A pack declares jobs in ``pack.yaml``::

    jobs:
      renewals: {function: renewals, module: jobs, every: day, at: "02:00"}

and a site may switch one off or move it in ``crm.yaml``::

    jobs:
      service_sales.renewals: {enabled: false}
      membership.points_expiry: {at: "04:30"}

The function must exist in the pack's module:
:func:`engine.metadata.packs.job_problems` parses the module (without running it) when the pack loads, so a typo is a
``file:line`` error of ``crm check`` rather than a failure at 02:00.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import DefinitionError, Problem
from engine.jobs.schedule import Schedule
from engine.metadata.model import Label
from engine.metadata.yaml_source import load_yaml

if TYPE_CHECKING:
    from engine.metadata.model import Registry
    from engine.site import Site, SiteConfig

SCHEDULE_KEYS: tuple[str, ...] = ("every", "at", "minute", "on")


@dataclass(frozen=True)
class PackJob:
    """One declared job: ``pack.name`` runs ``module.function`` on ``schedule``."""

    name: str  # pack.job
    pack: str
    module: str
    function: str
    schedule: Schedule
    label: Label


def pack_jobs(site: Site) -> dict[str, PackJob]:
    """The site's enabled pack jobs, by ``pack.job``, with crm.yaml's changes applied."""
    return configured_jobs(site.config, site.registry)


def configured_jobs(config: SiteConfig, registry: Registry) -> dict[str, PackJob]:
    """:func:`pack_jobs` from a site's settings and definitions (``crm check`` has no site).

    A ``jobs:`` entry of crm.yaml naming no declared job is a definition
    error pointing at its line.
    """
    declared: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for pack, info in registry.packs.items():
        manifest = Path(info.path) / "pack.yaml"
        data = load_yaml(manifest, f"packs/{pack}/pack.yaml").data or {}
        for name, item in (data.get("jobs") or {}).items():
            declared[f"{pack}.{name}"] = (pack, item)
    changes: Mapping[str, Any] = config.jobs
    unknown = [name for name in changes if name not in declared]
    if unknown:
        doc = config.document
        problems = [doc.problem(("jobs", name), f"no pack declares the job '{name}' (known: "
                                f"{', '.join(sorted(declared)) or 'none'})", key=True)
                    if doc is not None else Problem("crm.yaml", None, None, "jobs",
                                                    f"unknown job '{name}'")
                    for name in unknown]
        raise DefinitionError(problems)
    jobs = {}
    for name, (pack, item) in declared.items():
        change = changes.get(name) or {}
        if not change.get("enabled", item.get("enabled", True)):
            continue
        # The site's keys go over the pack's; a new ``every`` starts the timing afresh.
        timing = {} if "every" in change else {k: item[k] for k in SCHEDULE_KEYS if k in item}
        timing.update({key: change[key] for key in SCHEDULE_KEYS if key in change})
        jobs[name] = PackJob(name=name, pack=pack, module=item.get("module", "jobs"),
                             function=item["function"], schedule=Schedule.read(timing),
                             label=Label.from_yaml(item.get("label"), name))
    return jobs
