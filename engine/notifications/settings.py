"""The ``notifications:`` section of ``crm.yaml``, read into plain values.

Secrets never sit in the file: the SMTP password and the SMS gateway's
token are read from the environment variables the file names
(``password_env``, ``auth_env``), and ``CRM_REDIS_URL`` overrides
``redis_url``.  The shape is checked by the site schema; here only
defaults are filled in.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.metadata.durations import parse_clock_time, parse_duration


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # none | starttls | tls
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ca_file: str | None = None  # a CA bundle for a server with a private certificate


@dataclass(frozen=True)
class SmsSettings:
    url: str
    method: str = "POST"
    content_type: str = "application/json"
    body: str = '{"to": {{ to | tojson }}, "text": {{ text | tojson }}}'
    auth_header: str = "Authorization"
    auth_value: str | None = None
    idempotency_header: str | None = None
    timeout: float = 15.0


@dataclass(frozen=True)
class QuietHours:
    """A daily window (site time) when the listed channels wait; may cross midnight."""

    start: dt.time
    end: dt.time
    channels: tuple[str, ...] = ("email", "sms")

    def contains(self, local: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class NotificationSettings:
    sender: str = "VisionCRM <crm@localhost>"
    smtp: SmtpSettings | None = None
    sms: SmsSettings | None = None
    quiet_hours: QuietHours | None = None
    digest_at: dt.time = dt.time(8, 0)
    max_attempts: int = 5
    backoff: dt.timedelta = dt.timedelta(minutes=1)
    max_backoff: dt.timedelta = dt.timedelta(hours=6)
    lease: dt.timedelta = dt.timedelta(minutes=5)
    batch: int = 50
    scan_every: dt.timedelta = dt.timedelta(minutes=1)
    poll_every: dt.timedelta = dt.timedelta(seconds=5)
    redis_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def retry_delay(self, attempts: int) -> dt.timedelta:
        """Exponential backoff: backoff, 2×, 4×... after the 1st, 2nd, 3rd failed attempt."""
        delay = self.backoff * (2 ** max(0, attempts - 1))
        return min(delay, self.max_backoff)


def _env(name: str | None) -> str | None:
    return os.environ.get(name) if name else None


def read_settings(data: Mapping[str, Any] | None) -> NotificationSettings:
    """Settings from the ``notifications:`` mapping (already schema-checked)."""
    data = dict(data or {})
    smtp = sms = quiet = None
    if data.get("smtp"):
        s = data["smtp"]
        smtp = SmtpSettings(host=s["host"], port=int(s.get("port", 587)),
                            security=s.get("security", "starttls"), user=s.get("user"),
                            password=_env(s.get("password_env")),
                            timeout=float(s.get("timeout", 30)), ca_file=s.get("ca_file"))
    if data.get("sms"):
        s = data["sms"]
        token = _env(s.get("auth_env"))
        sms = SmsSettings(
            url=s["url"], method=s.get("method", "POST"),
            content_type=s.get("content_type", "application/json"),
            body=s.get("body", SmsSettings.body), auth_header=s.get("auth_header", "Authorization"),
            auth_value=f"{s.get('auth_prefix', 'Bearer ')}{token}" if token else None,
            idempotency_header=s.get("idempotency_header"), timeout=float(s.get("timeout", 15)),
        )
    if data.get("quiet_hours"):
        q = data["quiet_hours"]
        quiet = QuietHours(parse_clock_time(q["start"]), parse_clock_time(q["end"]),
                           tuple(q.get("channels", ("email", "sms"))))
    delivery = data.get("delivery") or {}
    return NotificationSettings(
        sender=data.get("sender", NotificationSettings.sender), smtp=smtp, sms=sms,
        quiet_hours=quiet,
        digest_at=parse_clock_time(data.get("digest_at", "08:00")),
        max_attempts=int(delivery.get("max_attempts", 5)),
        backoff=parse_duration(delivery.get("backoff", "1m")),
        max_backoff=parse_duration(delivery.get("max_backoff", "6h")),
        lease=parse_duration(delivery.get("lease", "5m")),
        batch=int(delivery.get("batch", 50)),
        scan_every=parse_duration(data.get("scan_every", "1m")),
        redis_url=os.environ.get("CRM_REDIS_URL") or data.get("redis_url"),
    )
