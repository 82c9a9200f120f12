"""What operators and their tools ask of a running site: health, readiness, metrics.

``/healthz`` answers as long as the process serves requests (a load
balancer's liveness probe).  ``/readyz`` says whether this process should
get traffic: the database answers and holds the definitions this process
was built from — after ``crm migrate`` on another machine, a process still
running the old definitions reports itself not ready until it reloads.  A
read-only replica is checked and reported but does not make the process
unready: taking every process out of rotation because the replica is down
would stop the writes the primary can still take.
``/metrics`` speaks Prometheus' text format through ``prometheus_client``,
to callers with a token: the site's metrics token (``CRM_METRICS_TOKEN`` or
``metrics.token`` in crm.yaml) or an administrator's API token, as
``Authorization: Bearer …``.  Routes, error counts and job failures tell an
outsider how a site is used and when it is failing, so without a token the
answer is 401 — unless ``metrics.open`` says a proxy already lets only the
scraper reach the path.

Metrics live in a registry owned by the app, not in the library's global
one, so two apps (two sites, or two tests) never mix their figures.  Under
gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` and the
figures of all workers are added up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from engine.errors import NotFound, PermissionDenied
from engine.http.context import EXTENSION, site
from engine.storage.migration.state import applied_state
from engine.web.admin.job_metrics import job_gauges, redis_check

bp = Blueprint("operations", __name__)
METRICS = "visioncrm_metrics"
#: A request id given by a proxy is kept if it looks like one (never logged raw otherwise).
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    latency: Histogram
    errors: Counter


class SiteCollector(Collector):
    """Figures read from the database at scrape time, so every worker reports the same."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily("visioncrm_outbox_messages",
                                    "Messages in the outbox by state.", labels=["status"])
        crm = self.app.extensions[EXTENSION].site  # the current one, also after a reload
        tables = crm.schema.metadata.tables
        if "crm_outbox" in tables:
            outbox = tables["crm_outbox"]
            try:
                with crm.engine.connect() as conn:
                    rows = conn.execute(select(outbox.c.status, func.count())
                                        .group_by(outbox.c.status)).all()
            except Exception:  # noqa: BLE001 - a scrape must not fail because the DB blinked
                rows = []
            for status, count in rows:
                backlog.add_metric([status], count)
        yield backlog
        yield from job_gauges(crm)


def install(app: Flask) -> None:
    """Register the probes and the request metrics on ``app``."""
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        metric_registry = None  # multiprocess values are written to files, read by the collector
    else:
        metric_registry = registry
    registry.register(SiteCollector(app))
    app.extensions[METRICS] = Metrics(
        registry=registry,
        latency=Histogram("visioncrm_request_seconds", "Time to answer a request, by route.",
                          ["site", "route", "method", "status"], registry=metric_registry),
        errors=Counter("visioncrm_request_errors_total", "Requests answered with a 5xx status.",
                       ["site", "route"], registry=metric_registry),
    )
    app.before_request(_start_timer)
    app.after_request(_record)
    app.register_blueprint(bp)


def _start_timer() -> None:
    g.started = time.perf_counter()
    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being served (for log lines), or None outside a request."""
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record, so a line can be traced to its request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line (``CRM_LOG_JSON=1``), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record), "level": record.levelname,
                "logger": record.name, "message": record.getMessage(),
                "request_id": getattr(record, "request_id", None)}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(*, json_lines: bool | None = None) -> None:
    """Log lines with request ids, as text or JSON lines (``CRM_LOG_JSON``)."""
    if json_lines is None:
        json_lines = os.environ.get("CRM_LOG_JSON", "") not in ("", "0")
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonLines() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    root = logging.getLogger("engine")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _record(response: Response) -> Response:
    started = g.get("started")
    if started is None:
        return response
    response.headers["X-Request-Id"] = g.request_id
    metrics: Metrics = current_app.extensions[METRICS]
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    # The site's name: under one installation's shared multiprocess figures, each site's
    # requests stay apart instead of being added up.
    name = current_app.extensions[EXTENSION].site.config.name
    metrics.latency.labels(name, route, request.method, str(response.status_code)).observe(
        time.perf_counter() - started)
    if response.status_code >= 500:
        metrics.errors.labels(name, route).inc()
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    crm = site()
    checks: dict[str, str] = {}
    ready = True
    try:
        with crm.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            applied = applied_state(conn)
        checks["database"] = "ok"
        expected = crm.registry.definitions_hash
        if applied is None or applied.definitions_hash != expected:
            ready = False
            checks["definitions"] = (f"this process runs {expected[:12]}, the database holds "
                                     f"{applied.definitions_hash[:12] if applied else 'none'}")
        else:
            checks["definitions"] = expected[:12]
    except Exception as exc:  # noqa: BLE001 - report, never raise, from a probe
        ready = False
        checks["database"] = f"unreachable: {exc.__class__.__name__}"
    if crm.report_engine is not crm.engine:
        # Reported, not required: without the replica, dashboards say their figures cannot be
        # read and exports fail, but records, forms and the API still work on the primary.
        try:
            with crm.report_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["replica"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, never raise, from a probe
            checks["replica"] = f"unreachable: {exc.__class__.__name__}"
    redis_ok, checks_redis = redis_check(crm)
    if checks_redis is not None:
        checks["redis"] = checks_redis
        ready = ready and redis_ok
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), \
        200 if ready else 503


def metrics_allowed() -> bool:
    """Whether this request may read /metrics (see the module docstring)."""
    crm = site()
    if crm.config.metrics.get("open") is True:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    expected = os.environ.get("CRM_METRICS_TOKEN") or crm.config.metrics.get("token")
    if expected and hmac.compare_digest(given.encode(), str(expected).encode()):
        return True
    try:
        return crm.users.actor_for_token(given).is_admin
    except (PermissionDenied, NotFound):
        return False


@bp.get("/metrics")
def metrics() -> Response:
    if not metrics_allowed():
        response = Response("/metrics needs a token: Authorization: Bearer <metrics token>\n",
                            status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = current_app.extensions[METRICS].registry
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
