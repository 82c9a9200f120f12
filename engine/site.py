"""A site: one client's CRM — its ``crm.yaml``, overlays, database and services.

A site folder holds ``crm.yaml`` (name, database URL, packs, locale) and a
``custom/`` folder of overlays.  :class:`Site` opens one: it loads and
checks the definitions, compiles the tables, connects to the database and
wires up the services.  Nothing about a site lives in module globals, so
several sites can be open in one process (and in one test run).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url

from engine.context import Clock, default_clock
from engine.errors import DefinitionError, SiteNotFound
from engine.metadata.loader import load_registry
from engine.metadata.model import Registry
from engine.metadata.packs import Requirement
from engine.metadata.schema_check import schema_problems
from engine.metadata.yaml_source import SourceDocument, load_yaml
from engine.services.access.roles import build_policy
from engine.services.access.users import UserService
from engine.services.records.attachments import DEFAULT_MAX_MB, AttachmentService
from engine.services.records.service import RecordService
from engine.services.records.transfer import TransferService
from engine.services.views.calendar import CalendarService
from engine.services.views.pipeline import PipelineService
from engine.services.workflows.service import WorkflowService
from engine.storage.database import (
    bind_definitions,
    create_db_engine,
    database_options,
    replica_url_problem,
)
from engine.storage.tables import Schema, build_schema
from engine.storage.types import decimal_problems

SITE_FILE = "crm.yaml"
OVERLAY_DIR = "custom"
DEFAULT_DATABASE_URL = "sqlite:///crm.db"

#: Environment variables that override crm.yaml (production secrets stay out of files);
#: a dotted key is a key of a section (``database.replica_url``).
ENV_OVERRIDES = {"CRM_DATABASE_URL": "database_url", "CRM_SECRET_KEY": "secret_key",
                 "CRM_DATABASE_REPLICA_URL": "database.replica_url"}


@dataclass(frozen=True)
class SiteConfig:
    root: Path
    name: str
    database_url: str
    packs: tuple[str, ...]
    locale: str = "en"
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    pack_paths: tuple[Path, ...] = ()
    secret_key: str | None = None
    #: ``attachments:`` of crm.yaml: ``store`` (folder | database) and ``max_size_mb``.
    attachments: Mapping[str, Any] = field(default_factory=dict)
    #: ``database:`` of crm.yaml: pool size and statement timeout (PostgreSQL), and the
    #: optional read-only replica reports, dashboards and exports read from.
    database: Mapping[str, Any] = field(default_factory=dict)
    #: ``company:`` of crm.yaml: the letterhead of printed documents.
    company: Mapping[str, Any] = field(default_factory=dict)
    #: The ``notifications:`` section, read by engine.notifications.settings.
    notifications: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: ``jobs:`` of crm.yaml: pack jobs switched off or re-timed (engine.jobs.definitions).
    jobs: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: ``backups:`` of crm.yaml: scheduled backups and their retention (engine.jobs.backups).
    backups: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: ``metrics:`` of crm.yaml: the token /metrics asks for, or ``open: true`` behind a proxy
    #: that lets only the scraper reach it (engine.web.admin.operations).
    metrics: Mapping[str, Any] = field(default_factory=dict, compare=False)
    document: SourceDocument | None = field(default=None, compare=False, repr=False)

    @property
    def overlay_dir(self) -> Path:
        return self.root / OVERLAY_DIR

    @property
    def replica_url(self) -> str | None:
        """``database.replica_url`` (or ``CRM_DATABASE_REPLICA_URL``): None reads from the primary."""
        return self.database.get("replica_url") or None

    def requirements(self) -> list[Requirement]:
        return [
            Requirement(name, self.document, ("packs", index))
            for index, name in enumerate(self.packs)
        ]


def find_site_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The site folder: ``--site``, else ``$CRM_SITE``, else the current folder or a parent."""
    if explicit:
        root = Path(explicit)
        if not (root / SITE_FILE).is_file():
            raise SiteNotFound(f"{root} is not a site: it has no {SITE_FILE}.")
        return root.resolve()
    env = os.environ.get("CRM_SITE")
    if env:
        return find_site_dir(env)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / SITE_FILE).is_file():
            return folder
    raise SiteNotFound(
        f"No {SITE_FILE} here or in any parent folder. Create a site with 'crm init DIR', "
        "or point to one with --site DIR or CRM_SITE."
    )


def load_site_config(root: Path) -> SiteConfig:
    """Read and check ``crm.yaml``; environment variables override its values."""
    doc = load_yaml(root / SITE_FILE, SITE_FILE)
    problems = schema_problems(doc, "site")
    if problems:
        raise DefinitionError(problems)
    data = dict(doc.data)
    for env, key in ENV_OVERRIDES.items():
        if os.environ.get(env):
            section, _, inner = key.rpartition(".")
            if section:
                data[section] = {**(data.get(section) or {}), inner: os.environ[env]}
            else:
                data[key] = os.environ[env]
    database = dict(data.get("database") or {})
    if "replica_url" in database:
        problem = replica_url_problem(database["replica_url"],
                                      data.get("database_url", DEFAULT_DATABASE_URL))
        if problem:
            given = ("CRM_DATABASE_REPLICA_URL" if os.environ.get("CRM_DATABASE_REPLICA_URL")
                     else "database.replica_url")
            raise DefinitionError([doc.problem(("database", "replica_url"),
                                               f"{given} {problem}.")])
    return SiteConfig(
        root=root,
        name=data["name"],
        database_url=data.get("database_url", DEFAULT_DATABASE_URL),
        packs=tuple(data["packs"]),
        locale=data.get("locale", "en"),
        currency=data.get("currency", "CNY"),
        timezone=data.get("timezone", "Asia/Shanghai"),
        pack_paths=tuple((root / p).resolve() for p in data.get("pack_paths", ())),
        secret_key=data.get("secret_key"),
        attachments=dict(data.get("attachments") or {}),
        company=dict(data.get("company") or {}),
        database=database,
        notifications=data.get("notifications") or {},
        jobs=data.get("jobs") or {},
        backups=data.get("backups") or {},
        metrics=data.get("metrics") or {},
        document=doc,
    )


def load_site_registry(config: SiteConfig) -> Registry:
    """The site's definitions, refused when its database cannot store them exactly."""
    registry = load_registry(
        config.requirements(),
        search_paths=config.pack_paths,
        overlay_dir=config.overlay_dir,
        overlay_prefix=OVERLAY_DIR,
    )
    problems = decimal_problems(registry, make_url(config.database_url).get_backend_name())
    if problems:
        raise DefinitionError(problems)
    return registry


class Site:
    """An opened site: definitions, tables, database and services, built once."""

    def __init__(
        self,
        config: SiteConfig,
        registry: Registry,
        *,
        engine: Engine | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.schema: Schema = build_schema(registry)
        # Writes carry the definitions this site was built from: after a migration
        # by another process they are refused until the site is reopened.
        self.engine = bind_definitions(
            engine or create_db_engine(config.database_url, base_dir=config.root,
                                       **database_options(config.database)),
            registry.definitions_hash)
        self.clock = clock or default_clock()
        self.policy = build_policy(registry.roles, self.schema)
        self.records = RecordService(registry, self.schema, self.engine, clock=self.clock,
                                     policy=self.policy)
        # Reports, dashboards, pipeline figures and exports read through these: a
        # read-only replica's when crm.yaml names one (the heavy reads leave the primary
        # alone), else the primary's.  Same registry, schema, policy and clock, so the
        # rights, scopes and hidden fields are exactly those of self.records; the replica
        # engine is not bound to the definitions hash, since it never writes.
        self.report_engine: Engine = self.engine
        self.report_records = self.records
        if config.replica_url:
            self.report_engine = create_db_engine(
                config.replica_url, base_dir=config.root, read_only=True,
                **database_options(config.database))
            self.report_records = RecordService(registry, self.schema, self.report_engine,
                                                clock=self.clock, policy=self.policy)
        self.ledgers = self.records.ledgers
        self.users = UserService(self.schema, self.engine, clock=self.clock,
                                 roles=registry.roles)
        self.attachments = AttachmentService(
            self.records, config.root, store=config.attachments.get("store", "folder"),
            max_size_mb=config.attachments.get("max_size_mb", DEFAULT_MAX_MB), clock=self.clock)
        self.records.files_deleted = self.attachments.unlink  # a deleted record's files' bytes
        self.calendar = CalendarService(
            self.records, registry.views, timezone=config.timezone, clock=self.clock,
            users_table=self.schema.system("crm_user"),
            feeds_table=self.schema.system("crm_calendar_feed"))
        self.transfers = TransferService(registry, self.schema, self.engine, clock=self.clock,
                                         policy=self.policy)
        self.workflows = WorkflowService(self.records, clock=self.clock)
        self.pipeline = PipelineService(self.report_records, clock=self.clock,
                                        timezone=config.timezone)

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, *, clock: Clock | None = None) -> Site:
        config = load_site_config(find_site_dir(root))
        return cls(config, load_site_registry(config), clock=clock)

    @functools.cached_property
    def print_formats(self) -> dict[str, Any]:
        """The packs' print formats, read once per opened site (a reload opens a new site)."""
        from engine.metadata.print_formats import declared_print_formats

        return declared_print_formats(self.registry)

    def close(self) -> None:
        self.engine.dispose()
        if self.report_engine is not self.engine:
            self.report_engine.dispose()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
