"""What the services that work across a whole site need from it, as a narrow interface.

Dashboards, report figures and exports are built from an opened site's other
services (records, the replica's records, the pipeline, users) and its settings.
The site (engine.site.Site) builds the services and sits above this layer, so
these modules name what they use through this protocol instead of importing
the site; any object with these attributes will do, which also keeps them easy
to test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from engine.context import Clock
    from engine.metadata.model import Registry
    from engine.services.access.users import UserService
    from engine.services.records.service import RecordService
    from engine.services.views.pipeline import PipelineService


class SiteSettings(Protocol):
    """The site settings (crm.yaml) these services read."""

    @property
    def timezone(self) -> str: ...

    @property
    def overlay_dir(self) -> Path: ...


class SiteServices(Protocol):
    """An opened site, as dashboards, figures and exports see it."""

    @property
    def config(self) -> SiteSettings: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def records(self) -> RecordService: ...

    @property
    def report_records(self) -> RecordService: ...

    @property
    def pipeline(self) -> PipelineService: ...

    @property
    def users(self) -> UserService: ...
